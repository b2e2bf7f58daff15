"""Which folder a verb may touch: only ``<data root>/<key>``, proven to be that batch.

Every verb that writes or deletes goes through here first. A batch folder is

- a direct child of the data root, compared as real paths (symlinks followed), so a
  link inside the root that points elsewhere, ``..``, ``.`` or the root itself never
  qualify;
- named by a valid batch key;
- marked as that batch's own: ``batch.json`` whose ``key`` is the folder's name.

Anything else is refused with an ``OperationError`` (exit 2) naming what was given and
what is allowed; nothing has been touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from onyx_tools.layout import BATCH_KEY_RULE, is_valid_batch_key

from ..batches import data_root_from_env
from ..settings import OnyxSettings
from .errors import OperationError

MARKER = "batch.json"


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.path.expanduser(str(path)))))


def data_root_given(option: str | None) -> bool:
    return bool(option) or "data" in OnyxSettings.from_env().model_fields_set


def batch_argument(value: str, data_root_option: str | None) -> tuple[Path, str]:
    """(data root, key) for a verb's BATCH argument: a batch key, or the path of a batch folder.

    A path must name a folder directly inside the data root (``--data-root``/ONYX_DATA);
    where neither is set, the data root is the folder's parent. Whatever the form, the
    result still has to pass ``checked_batch_folder`` before anything is touched.
    """
    text = (value or "").strip()
    if not text:
        raise OperationError("no batch given: name a batch key (onyx list shows them) or the path of a batch folder")
    if os.sep not in text and text not in (".", "..", "~") and not text.startswith("~"):
        if not is_valid_batch_key(text):
            raise OperationError(f"{text!r} is not a batch: {BATCH_KEY_RULE}")
        root = Path(os.path.abspath(os.path.expanduser(data_root_option))) if data_root_option else data_root_from_env()
        return root, text
    folder = _real(text)
    if folder == folder.parent:
        raise OperationError(f"{value!r} is the file system root, not a batch folder: give a batch key")
    if data_root_given(data_root_option):
        root = Path(os.path.abspath(os.path.expanduser(data_root_option))) if data_root_option else data_root_from_env()
        if folder == _real(root):
            raise OperationError(
                f"{value!r} is the data root {root} itself, not a batch folder in it: give a batch key "
                "(onyx list shows them)")
        if folder.parent != _real(root):
            raise OperationError(
                f"{value!r} resolves to {folder}, which is not a folder directly inside the data root "
                f"{_real(root)}: give a batch key, or the path of {_real(root)}/KEY")
    else:
        root = folder.parent
    if not is_valid_batch_key(folder.name):
        raise OperationError(f"{value!r} resolves to {folder}, whose name is not a batch key: {BATCH_KEY_RULE}")
    return root, folder.name


def marker_key(folder: Path) -> str | None:
    """The key written in ``folder/batch.json``; None when the file is absent or unreadable."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    # batch.json files of Onyx 0.1 carry no key: their folder name is the key.
    return str(document.get("key", Path(folder).name))


def checked_batch_folder(data_root: Path, key: str, *, must_exist: bool = True) -> Path | None:
    """``<data root>/<key>`` once proven to be that batch's own folder (see the module doc).

    Returns None when the folder does not exist and ``must_exist`` is False.
    """
    if not is_valid_batch_key(key):
        raise OperationError(f"{key!r} is not a batch: {BATCH_KEY_RULE}")
    folder = Path(data_root) / key
    if not os.path.lexists(folder):
        if must_exist:
            raise OperationError(f"batch {key!r} has no folder under {data_root} (onyx list shows the batches)")
        return None
    real_root, real = _real(data_root), _real(folder)
    if folder.is_symlink():
        raise OperationError(
            f"refusing {folder}: it is a symlink (to {os.readlink(folder)}), not a batch folder; Onyx only acts "
            "on real <data root>/<batch key> folders (remove the link by hand)")
    if real.parent != real_root or real.name != key:
        raise OperationError(
            f"refusing {folder}: it resolves to {real}, not a folder directly inside the data root {real_root}; "
            "Onyx only acts on <data root>/<batch key> folders (remove the link by hand)")
    if not real.is_dir():
        raise OperationError(f"refusing {folder}: not a directory, so not a batch folder")
    found = marker_key(real)
    if found is None:
        raise OperationError(
            f"refusing {folder}: it holds no readable {MARKER}, so it is not a batch folder "
            "(Onyx writes one when it creates a batch; it never acts on other folders)")
    if found != key:
        raise OperationError(
            f"refusing {folder}: its {MARKER} belongs to batch {found!r}, not {key!r} (a folder renamed or "
            "copied by hand): rename it back, or export and import it under the new key")
    return folder


def check_outside_data_root(path: Path, data_root: Path, what: str) -> None:
    """Refuse a user-chosen output path (an export) that lands inside the data root."""
    real, real_root = _real(path), _real(data_root)
    if real == real_root or real.is_relative_to(real_root):
        raise OperationError(
            f"{what} {path} is inside the data root {real_root}, which holds batch folders only: "
            "write it somewhere else")
