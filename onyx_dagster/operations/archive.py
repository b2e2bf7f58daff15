"""export / import-batch: a batch as one zip, checked file by file on the way in.

The archive holds the batch folder's files at their relative paths (images/, sparse/,
output/, masks/, logs/, previews/, batch.json, ...) and ``onyx-manifest.json``:

    {"format": "onyx-batch", "version": 1, "batch": KEY, "exported_at": ISO,
     "files": {"images/0001.jpg": "<sha256>", ...},
     "lineage": [{"asset", "partition", "recipe", "run_id", "time", "data_version",
                  "code_version", "metadata"}, ...]}

The lineage is each asset partition's last materialisation from the event log. Import
verifies everything before it writes anything (paths, file types, the manifest, every
checksum), extracts into a hidden temporary folder inside the data root, checks again,
renames it into place, registers the partition and records each lineage entry as a
runless materialisation with ``imported_from`` metadata (the UI shows them as imported).
The input video is not exported (it can be large and is not needed downstream of frames).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from dagster import AssetKey, AssetMaterialization, MetadataValue
from onyx_tools.manifest import file_sha256
from onyx_tools.publish import write_text_atomic

from ..batches import BatchError, check_batch_key, parse_settings, settings_document
from ..partitions import batches
from .batch_paths import check_outside_data_root
from .context import BATCH_ASSETS, RECIPE_ASSETS, Onyx
from .errors import OperationError
from .state import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    LOCK_NAME,
    batch_lock,
    ensure_idle,
    known_recipes,
    latest_materialization,
    partition_for,
    recipe_partition,
)
from .verbs import load_batch

MANIFEST = "onyx-manifest.json"
FORMAT = "onyx-batch"
VERSION = 1
_STORED = {".jpg", ".jpeg", ".png", ".mp4", ".mov", ".zip", ".gz", ".npz"}
_CHUNK = 1 << 20


def _skip(relative: PurePosixPath) -> bool:
    """Scratch and bookkeeping that never leaves the machine."""
    first = relative.parts[0]
    return (str(relative) == LOCK_NAME or first == ".work"
            or any(part.startswith((".tmp-", ".old-")) for part in relative.parts))


def _simple(value):
    value = getattr(value, "value", value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def lineage(onyx: Onyx, key: str, recipes: list[str]) -> list[dict]:
    instance = onyx.instance()
    entries = []
    for name in BATCH_ASSETS + RECIPE_ASSETS:
        if not onyx.has_asset(name):
            continue
        for recipe in (recipes if name in RECIPE_ASSETS else [None]):
            partition = partition_for(name, key, recipe)
            record = latest_materialization(instance, name, partition)
            if record is None:
                continue
            event = record.asset_materialization
            tags = event.tags or {}
            entries.append({
                "asset": name, "partition": partition, "recipe": recipe,
                "run_id": record.run_id,
                "time": dt.datetime.fromtimestamp(record.timestamp, tz=dt.timezone.utc).isoformat(),
                "data_version": tags.get(DATA_VERSION_TAG), "code_version": tags.get(CODE_VERSION_TAG),
                "metadata": {k: _simple(v) for k, v in (event.metadata or {}).items()},
            })
    return entries


def export_batch(onyx: Onyx, key: str, output: Path) -> dict:
    """Write ``output`` (a .zip); returns the manifest."""
    settings = load_batch(onyx, key)
    output = Path(os.path.abspath(output))
    folder = onyx.layout(key).root
    if os.path.lexists(output):
        raise OperationError(f"{output} already exists: choose another -o or remove it first")
    if not output.parent.is_dir():
        raise OperationError(f"the folder of {output} does not exist: create it or choose another -o")
    check_outside_data_root(output, onyx.data_root, "the export")
    instance = onyx.instance()
    ensure_idle(instance, key, onyx.note)
    with batch_lock(folder, key, onyx.note):
        files: dict[str, str] = {}
        skipped_links = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                path = Path(dirpath) / name
                relative = PurePosixPath(path.relative_to(folder).as_posix())
                if _skip(relative):
                    continue
                if path.is_symlink():
                    skipped_links.append(str(relative))
                    continue
                if path.is_file():
                    files[str(relative)] = file_sha256(path)
        recipes = known_recipes(onyx, instance, key, settings.recipe)
        manifest = {
            "format": FORMAT, "version": VERSION, "batch": key,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "settings": json.loads(settings.model_dump_json()),
            "files": files,
            "skipped_symlinks": skipped_links,
            "lineage": lineage(onyx, key, recipes),
        }
        partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            with zipfile.ZipFile(partial, "w", allowZip64=True) as archive:
                archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                 compress_type=zipfile.ZIP_DEFLATED)
                for relative in files:
                    method = zipfile.ZIP_STORED if PurePosixPath(relative).suffix.lower() in _STORED \
                        else zipfile.ZIP_DEFLATED
                    archive.write(folder / relative, relative, compress_type=method)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


# -- import ----------------------------------------------------------------------------
def _check_name(name: str) -> str | None:
    """Why an archive member name is refused, or None."""
    if not name:
        return "an empty file name"
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return f"an absolute path {name!r}"
    if "\\" in name:
        return f"a backslash in {name!r} (not a portable path)"
    if "\x00" in name:
        return f"a NUL byte in {name!r}"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return f"a path that climbs out of the batch folder {name!r} (zip-slip)"
    return None


def _member_kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # unix attributes present
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            return "device file"
        if stat.S_ISFIFO(mode):
            return "named pipe"
        if stat.S_ISSOCK(mode):
            return "socket"
        if stat.S_ISDIR(mode):
            return "dir"
    return "dir" if info.is_dir() else "file"


def _hash_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, write_to: Path | None = None) -> str:
    digest = hashlib.sha256()
    with archive.open(info) as source:
        sink = open(write_to, "xb") if write_to is not None else None  # noqa: SIM115
        try:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            if sink is not None:
                sink.close()
    return digest.hexdigest()


def inspect_archive(path: Path) -> tuple[dict, list[zipfile.ZipInfo]]:
    """The manifest and the file members, once every structural check has passed."""
    path = Path(path)
    if not path.is_file():
        raise OperationError(f"archive {path} does not exist: check the path")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise OperationError(f"{path} is not a zip archive (or it is damaged): give a file written by `onyx export`") from None
    with archive:
        members = archive.infolist()
        problems = []
        names = set()
        files = []
        for info in members:
            reason = _check_name(info.filename)
            if reason:
                problems.append(f"refused: the archive holds {reason}")
                continue
            kind = _member_kind(info)
            if kind in ("symlink", "device file", "named pipe", "socket"):
                problems.append(f"refused: {info.filename!r} is a {kind}; an Onyx export holds regular files only")
                continue
            if kind == "dir":
                continue
            normal = str(PurePosixPath(info.filename))
            if normal in names:
                problems.append(f"refused: {info.filename!r} appears twice in the archive")
                continue
            names.add(normal)
            if normal != MANIFEST:
                files.append(info)
        if problems:
            raise OperationError(f"{path} is not a safe Onyx export, nothing written:\n  " + "\n  ".join(problems))
        if MANIFEST not in names:
            raise OperationError(f"{path} has no {MANIFEST}: it was not written by `onyx export`")
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except (ValueError, UnicodeDecodeError):
            raise OperationError(f"{path}: {MANIFEST} is not valid JSON (the archive is damaged)") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or \
            not isinstance(manifest.get("files"), dict):
        raise OperationError(f"{path}: {MANIFEST} is not an Onyx batch manifest (format {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise OperationError(f"{path}: manifest version {manifest.get('version')!r} is not supported "
                             f"(this onyx reads version {VERSION}): import it with a matching onyx")
    listed = manifest["files"]
    for name in listed:
        reason = _check_name(name)
        if reason:
            raise OperationError(f"{path} is not a safe Onyx export, nothing written:\n  refused: "
                                 f"the manifest lists {reason}")
    present = {str(PurePosixPath(info.filename)) for info in files}
    unlisted = sorted(present - set(listed))
    missing = sorted(set(listed) - present)
    if unlisted:
        raise OperationError(f"{path}: files not in the manifest: {', '.join(unlisted[:5])} "
                             "(the archive was altered): nothing written")
    if missing:
        raise OperationError(f"{path}: files listed in the manifest are missing: {', '.join(missing[:5])} "
                             "(the archive is incomplete): nothing written")
    if "batch.json" not in present:
        raise OperationError(f"{path} has no batch.json: it is not a batch export")
    return manifest, files


def verify_checksums(path: Path, manifest: dict, files: list[zipfile.ZipInfo]) -> None:
    with zipfile.ZipFile(path) as archive:
        for info in files:
            name = str(PurePosixPath(info.filename))
            try:
                actual = _hash_member(archive, info)
            except (zipfile.BadZipFile, OSError, EOFError) as error:
                raise OperationError(f"{path}: {name} cannot be read ({error}): the archive is damaged; nothing written") from None
            if actual != manifest["files"][name]:
                raise OperationError(
                    f"{path}: checksum mismatch for {name} (manifest {manifest['files'][name][:12]}..., "
                    f"archive {actual[:12]}...): the archive is damaged or was altered; nothing written")


def _check_data_root(data_root: Path) -> None:
    probe = data_root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OperationError(f"data root {data_root} is not writable ({probe} refuses writes): "
                             "choose another -o or fix its permissions")


def import_batch(onyx: Onyx, archive_path: Path, new_key: str | None = None) -> dict:
    """Verify, extract and register; returns {"batch", "folder", "files", "materializations"}."""
    archive_path = Path(os.path.abspath(archive_path))
    manifest, files = inspect_archive(archive_path)
    key = new_key or str(manifest.get("batch", ""))
    try:
        check_batch_key(key)
    except BatchError as error:
        hint = "" if new_key else " (the archive's key; give --as NEWKEY)"
        raise OperationError(f"{error}{hint}") from None
    with zipfile.ZipFile(archive_path) as archive:
        try:
            raw = json.loads(archive.read("batch.json"))
            raw.pop("schema", None)
            archived_key = raw.pop("key", None)
            settings = parse_settings(raw)
        except (ValueError, BatchError) as error:
            raise OperationError(f"{archive_path}: its batch.json is not valid: {error}") from None
    instance = onyx.instance(create=False)
    target = onyx.layout(key).root
    registered = instance is not None and instance.has_dynamic_partition(batches.name, key)
    if registered or (os.path.lexists(target) and (target.is_symlink() or not target.is_dir() or any(target.iterdir()))):
        where = "is registered in Dagster" if registered else f"exists and is not empty ({target})"
        raise OperationError(
            f"batch {key!r} {where}: import it under another key with --as NEWKEY, or purge the existing one")
    _check_data_root(onyx.data_root)
    needed = sum(info.file_size for info in files)
    probe = onyx.data_root if onyx.data_root.exists() else next(p for p in onyx.data_root.parents if p.exists())
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise OperationError(f"the archive needs {needed / 1e9:.2f} GB, {probe} has {free / 1e9:.2f} GB free: "
                             "free some space or import elsewhere (-o)")
    verify_checksums(archive_path, manifest, files)

    # Everything checked: write.
    created_root = not onyx.data_root.exists()
    onyx.data_root.mkdir(parents=True, exist_ok=True)
    staging = onyx.data_root / f".import-{key}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info in files:
                name = str(PurePosixPath(info.filename))
                destination = staging.joinpath(*PurePosixPath(name).parts)
                if not Path(os.path.realpath(destination.parent)).is_relative_to(os.path.realpath(staging)) and \
                        destination.parent.exists():
                    raise OperationError(f"refused: {name} would be written outside the batch folder")
                destination.parent.mkdir(parents=True, exist_ok=True)
                if _hash_member(archive, info, write_to=destination) != manifest["files"][name]:
                    raise OperationError(f"{archive_path}: checksum mismatch for {name} while extracting: nothing written")
        if archived_key != key:  # imported under another key (--as): the marker names the new one
            write_text_atomic(staging / "batch.json", settings_document(key, settings))
        if target.is_dir():
            target.rmdir()  # empty, checked above
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_root:
            shutil.rmtree(onyx.data_root, ignore_errors=True)
        raise

    instance = onyx.instance()
    instance.add_dynamic_partitions(batches.name, [key])
    recorded = 0
    source_key = manifest.get("batch")
    for entry in manifest.get("lineage", []):
        name = entry.get("asset")
        if name not in BATCH_ASSETS + RECIPE_ASSETS or not onyx.has_asset(name):
            continue
        recipe = entry.get("recipe")
        partition = recipe_partition(key, recipe) if name in RECIPE_ASSETS else key
        tags = {}
        if entry.get("data_version"):
            tags[DATA_VERSION_TAG] = str(entry["data_version"])
        if entry.get("code_version"):
            tags[CODE_VERSION_TAG] = str(entry["code_version"])
        metadata = {
            "imported_from": MetadataValue.path(str(archive_path)),
            "source_batch": str(source_key),
            "source_run_id": str(entry.get("run_id") or ""),
            "source_time": str(entry.get("time") or ""),
            "exported_at": str(manifest.get("exported_at", "")),
        }
        for meta_key, value in (entry.get("metadata") or {}).items():
            if meta_key not in metadata and isinstance(value, (str, int, float, bool)):
                metadata[meta_key] = value
        instance.report_runless_asset_event(
            AssetMaterialization(asset_key=AssetKey(name), partition=partition, metadata=metadata, tags=tags))
        recorded += 1
    return {"batch": key, "folder": str(target), "files": len(files), "materializations": recorded}
