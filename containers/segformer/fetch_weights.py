"""Download a SegFormer checkpoint and save it for offline use (run at image build time, never at run time).

    python fetch_weights.py --model-id nvidia/segformer-b5-finetuned-ade-640-640 --out /opt/onyx/weights/segformer

Writes config.json, model.safetensors, preprocessor_config.json and onyx_model.json with save_pretrained; the
segformer step loads that folder with local_files_only=True (ONYX_SEGFORMER_WEIGHTS or model_dir).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODEL_ID = "nvidia/segformer-b5-finetuned-ade-640-640"


def fetch(model_id: str, out: Path) -> None:
    from transformers import AutoImageProcessor, SegformerForSemanticSegmentation

    out.mkdir(parents=True, exist_ok=True)
    model = SegformerForSemanticSegmentation.from_pretrained(model_id)
    model.save_pretrained(out)
    try:
        AutoImageProcessor.from_pretrained(model_id).save_pretrained(out)
    except Exception as error:  # the step falls back to ImageNet normalisation at 512x512
        print(f"warning: no image processor saved for {model_id}: {error}", file=sys.stderr)
    # which checkpoint this folder holds, so the step records the model it really ran
    (out / "onyx_model.json").write_text(json.dumps({"model_id": model_id}) + "\n", encoding="utf-8")
    labels = model.config.id2label
    print(f"saved {model_id} to {out}: {model.config.num_labels} labels; "
          f"2={labels.get(2)}, 12={labels.get(12)}, 21={labels.get(21)}, 26={labels.get(26)}, 76={labels.get(76)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-id", default=DEFAULT_MODEL_ID)
    parser.add_argument("--out", type=Path, required=True, help="folder to save the weights into")
    args = parser.parse_args(argv)
    fetch(args.model_id, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
