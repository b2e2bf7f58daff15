#!/usr/bin/env bash
# GPU check for onyx_milo, for a machine with an NVIDIA GPU and the onyx-milo image (or MILo at
# $ONYX_MILO_HOME). Runs the real wrapper on a real batch (the chair photographs, SfM by pycolmap)
# with a short training (ITER, default 2000) and checks the splat and the mesh it reports.
#   containers/milo/gpu_check.sh [WORKDIR]        (from the repository root)
# Not yet run: it needs a GPU and the MILo image.
set -euo pipefail
WORK=${1:-$(mktemp -d)}
ITER=${ITER:-2000}
DATASET=${DATASET:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/datasets/chair_images}
nvidia-smi -L
python - "$WORK" "$DATASET" "$ITER" <<'PY'
import shutil, sys, time
from pathlib import Path
import pycolmap
from dagster import AssetExecutionContext, PipesSubprocessClient, asset, materialize

work, dataset, iterations = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
batch = work / "batch"
(batch / "images").mkdir(parents=True, exist_ok=True)
for p in sorted(dataset.glob("*.jpg")):
    shutil.copyfile(p, batch / "images" / p.name)
db = work / "sfm.db"
pycolmap.extract_features(db, batch / "images", camera_mode=pycolmap.CameraMode.SINGLE)
pycolmap.match_exhaustive(db)
model = max(pycolmap.incremental_mapping(db, batch / "images", work / "sfm").values(),
            key=lambda r: r.num_reg_images())
(batch / "sparse" / "0").mkdir(parents=True, exist_ok=True)
model.write(batch / "sparse" / "0")

@asset
def reconstruction(context: AssetExecutionContext, pipes: PipesSubprocessClient):
    return pipes.run(context=context, command=[sys.executable, "-m", "onyx_milo"],
                     extras={"batch_dir": str(batch), "recipe": "gaussian-production", "scene": "indoor",
                             "iterations": iterations}).get_materialize_result()

started = time.monotonic()
result = materialize([reconstruction], resources={"pipes": PipesSubprocessClient()})
meta = {k: getattr(v, "value", v) for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}
print("wall", round(time.monotonic() - started, 1), "s", meta)
assert meta["gaussians"] > 1000 and meta["faces"] > 1000, meta
assert (batch / meta["splat_path"]).is_file() and (batch / meta["mesh_path"]).is_file()
print("MILO GPU CHECK OK")
PY
