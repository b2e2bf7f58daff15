"""``onyx install --weights``: the SegFormer checkpoint for the local runner's masks step.

The segformer image fetches its weights when it is built (containers/segformer/fetch_weights.py);
a local install keeps them in the weights cache (``ONYX_WEIGHTS``, default ``~/.cache/onyx/weights``)
under ``segformer/``, where the local runner points the step (``ONYX_SEGFORMER_WEIGHTS``).

    onyx install --weights                       # from the model hub (network), hashes checked
    onyx install --weights --weights-from DIR    # from a save_pretrained folder (offline machines)

Either way the files are copied into a hidden folder beside the target with a progress bar,
``onyx_weights.json`` records the sha256 and size of each, every file is hashed again against
it and the checkpoint is loaded once, and only then the folder takes the target's place. The
masks preflight checks the files against that record before a run starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from onyx_tools.publish import write_text_atomic

MANIFEST = "onyx_weights.json"
CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# What a save_pretrained SegFormer folder holds that the step reads (fetch_weights.py writes the same).
KNOWN_FILES = (CONFIG_FILE, *WEIGHT_FILES, "preprocessor_config.json", "onyx_model.json")
CHUNK = 1 << 20

Printer = Callable[[str], None]


class WeightsError(RuntimeError):
    """The weights could not be installed or do not verify; the message says what to do."""


def segformer_folder(weights_root: Path) -> Path:
    return Path(weights_root) / "segformer"


def _progress(total: int, label: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr,
                disable=None, leave=True, dynamic_ncols=True)


def _sha256(path: Path, bar=None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return digest.hexdigest()


def _copy(source: Path, target: Path, bar) -> None:
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
            bar.update(len(chunk))
        writer.flush()
        os.fsync(writer.fileno())


def checkpoint_files(folder: Path) -> list[Path]:
    """The files of a save_pretrained SegFormer folder the step needs; WeightsError when it is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"{folder} is not a folder")
    files = [folder / name for name in KNOWN_FILES if (folder / name).is_file()]
    names = {path.name for path in files}
    if CONFIG_FILE not in names or not names & set(WEIGHT_FILES):
        raise WeightsError(f"{folder} is not a saved SegFormer checkpoint (it needs {CONFIG_FILE} and "
                           f"{' or '.join(WEIGHT_FILES)}, as save_pretrained writes them)")
    return files


def verify(folder: Path, full: bool = True, bar_label: str | None = None) -> dict:
    """Check every file against ``onyx_weights.json`` (sizes; sha256 too when ``full``); the record."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(f"no SegFormer weights are installed in {folder}: `onyx install --weights` installs them")
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = dict(record["files"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"{folder / MANIFEST} is missing or unreadable ({error})") from None
    total = sum(int(item["bytes"]) for item in files.values())
    bar = _progress(total, bar_label) if full and bar_label else None
    try:
        for name, item in sorted(files.items()):
            path = folder / name
            if not path.is_file():
                raise WeightsError(f"{path} is missing")
            size = path.stat().st_size
            if size != int(item["bytes"]):
                raise WeightsError(f"{path} is {size} bytes, {item['bytes']} were installed")
            if full and _sha256(path, bar) != item["sha256"]:
                raise WeightsError(f"{path} does not match the sha256 recorded when it was installed")
    finally:
        if bar is not None:
            bar.close()
    return record


def weights_problem(folder: Path) -> str | None:
    """What is wrong with the weights folder, in a few words (None: usable). Sizes only: it runs
    before every run; ``onyx install --weights --verify`` hashes every byte."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"are not installed (no {folder})"
    try:
        checkpoint_files(folder)
        if (folder / MANIFEST).is_file():
            verify(folder, full=False)
    except WeightsError as error:
        return f"in {folder} are unusable: {error}"
    return None


def load_check(folder: Path) -> int:
    """Load the checkpoint as the masks step does (local files only); its label count."""
    from transformers import SegformerForSemanticSegmentation

    try:
        model = SegformerForSemanticSegmentation.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise WeightsError(f"the checkpoint in {folder} does not load: {error}") from None
    return int(model.config.num_labels)


def install_from_folder(source: Path, weights_root: Path, *, origin: str, model_id: str,
                        force: bool = False, out: Printer = print) -> Path:
    """Copy a save_pretrained folder into the cache, record and verify it, load it; the installed folder."""
    target = segformer_folder(weights_root)
    if target.exists() and not force:
        try:
            verify(target, full=False)
            out(f"SegFormer weights already installed in {target} (--force installs them again)")
            return target
        except WeightsError:
            out(f"SegFormer weights in {target} are damaged: installing them again")
    files = checkpoint_files(Path(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-segformer-", dir=target.parent))
    try:
        total = sum(path.stat().st_size for path in files)
        bar = _progress(total, "copying")
        try:
            for path in files:
                _copy(path, staging / path.name, bar)
        finally:
            bar.close()
        if not (staging / "onyx_model.json").is_file():  # which checkpoint, as fetch_weights.py records it
            write_text_atomic(staging / "onyx_model.json", json.dumps({"model_id": model_id}) + "\n")
        recorded = {path.name: {"sha256": _sha256(path), "bytes": path.stat().st_size}
                    for path in sorted(staging.iterdir()) if path.is_file()}
        write_text_atomic(staging / MANIFEST, json.dumps(
            {"model_id": model_id, "origin": origin, "files": recorded}, indent=2) + "\n")
        verify(staging, full=True, bar_label="verifying")
        labels = load_check(staging)
        old = None
        if target.exists():
            old = target.with_name(f".old-segformer-{os.getpid()}")
            os.rename(target, old)
        os.rename(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    out(f"SegFormer weights ({model_id}, {labels} labels) installed and verified in {target}")
    return target


def download(model_id: str, into: Path, out: Printer = print) -> str:
    """The checkpoint from the model hub into ``into``, each large file's sha256 checked against the
    hub's record of it; returns the revision. (Needs network: not run by the tests.)"""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi().model_info(model_id, files_metadata=True)
    wanted = [s for s in info.siblings if s.rfilename in KNOWN_FILES]
    if not any(s.rfilename in WEIGHT_FILES for s in wanted):
        raise WeightsError(f"{model_id} on the model hub has no {' or '.join(WEIGHT_FILES)}")
    out(f"downloading {model_id} at {info.sha[:12]} ({', '.join(s.rfilename for s in wanted)})")
    snapshot_download(model_id, revision=info.sha, local_dir=str(into),
                      allow_patterns=[s.rfilename for s in wanted])
    for sibling in wanted:
        expected = getattr(sibling.lfs, "sha256", None) if sibling.lfs else None
        if expected and _sha256(Path(into) / sibling.rfilename) != expected:
            raise WeightsError(f"{sibling.rfilename} of {model_id} does not match the hub's sha256: "
                               "the download is damaged; run `onyx install --weights` again")
    return info.sha


def install_weights(weights_root: Path, *, model_id: str, source: Path | None = None, force: bool = False,
                    out: Printer = print) -> Path:
    if source is not None:
        return install_from_folder(source, weights_root, origin=str(Path(source).resolve()), model_id=model_id,
                                   force=force, out=out)
    Path(weights_root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-download-", dir=weights_root) as folder:
        try:
            revision = download(model_id, Path(folder), out)
        except WeightsError:
            raise
        except Exception as error:  # noqa: BLE001 - no network, hub errors: one line with the way out
            raise WeightsError(
                f"could not download {model_id} ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}): "
                "on a machine without network, fetch it elsewhere (python containers/segformer/fetch_weights.py "
                "--out DIR) and run `onyx install --weights --weights-from DIR`") from None
        return install_from_folder(Path(folder), weights_root, origin=f"hub:{model_id}@{revision}",
                                   model_id=model_id, force=force, out=out)
