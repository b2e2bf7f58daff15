"""Load the system zlib's users before pycolmap. Import this module before ``import pycolmap``.

Measured here (pycolmap 4.2.1 wheel, CPython 3.11): pycolmap's _core exports its own zlib
(deflate, inflate, ...). A module that binds zlib *after* pycolmap is loaded (Python's zlib,
Pillow's PNG writer behind matplotlib) can end up calling pycolmap's copy with the system
zlib's structures: heap corruption ("free(): invalid pointer", "corrupted size vs. prev_size")
after e.g. ``import pycolmap; zlib.compress(1 MB)``. Binding them first avoids it.
"""

import zlib  # noqa: F401

try:
    import PIL._imaging  # noqa: F401  (matplotlib's PNG writer)
except ImportError:  # pragma: no cover - matplotlib brings Pillow
    pass
