"""Which QR decoder a camera's worker will use, told without loading it: the gateway shows it
in ``/healthz`` before the worker has started (then the worker's own answer replaces it).

The worker decides as drivers/camera/decoder.py says: ZBar when pyzbar imports and finds its
native library, else OpenCV alone. pyzbar finds that library with ``ctypes.util.find_library``;
so does this prediction, which neither imports pyzbar nor loads the library.
"""

from __future__ import annotations

import functools
import importlib.util

from drivers.camera.strategies import Engine

__all__ = ["predicted_engine"]


@functools.cache
def predicted_engine() -> Engine:
    """ "zbar" when pyzbar is installed and the ZBar library can be found, else "opencv"."""
    try:
        installed = importlib.util.find_spec("pyzbar") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return "opencv"
    from ctypes.util import find_library

    return "zbar" if find_library("zbar") else "opencv"
