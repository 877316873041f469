"""A machine without ZBar's native library, for a subprocess: a ``pyzbar`` package first on
``PYTHONPATH`` whose decoding module fails to import exactly as the real one does when Debian's
``libzbar0`` is missing (pyzbar/zbar_library.py)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.procs import ROOT

__all__ = ["env_without_zbar"]

MESSAGE = "Unable to find zbar shared library"


def env_without_zbar(tmp: Path) -> dict[str, str]:
    """The environment for a subprocess in which ``from pyzbar import pyzbar`` raises
    ``ImportError('Unable to find zbar shared library')``."""
    shim = tmp / "no-zbar" / "pyzbar"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text("")
    (shim / "pyzbar.py").write_text(f"raise ImportError({MESSAGE!r})\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim.parent), str(ROOT)])}
