"""Run Python as if saltgw's optional extras were not installed (the core install).

:func:`blocked_env` writes a ``sitecustomize.py`` into a directory and returns an environment
with that directory first on ``PYTHONPATH``. In a subprocess started with it, a meta path
finder answers every import (and every ``importlib.util.find_spec``) of the blocked top-level
modules with ``ModuleNotFoundError``, exactly as when the package is not installed: the
packages stay installed for the rest of the test run, only that process cannot see them.

Every blocked lookup is recorded: ``import sitecustomize; sitecustomize.BLOCKED_LOOKUPS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from tests.support.procs import ROOT

__all__ = ["OPTIONAL_MODULES", "blocked_env", "run_blocked", "start_blocked"]

OPTIONAL_MODULES = (
    "pymodbus",  # modbus
    "serial",  # modbus, scanner (pyserial)
    "asyncua",  # opcua
    "cv2",  # camera (opencv-python-headless)
    "pyzbar",  # camera
    "numpy",  # camera
    "amqtt",  # demo
    "rich",  # demo
    "google",  # sparkplug (protobuf)
    "waitress",  # resolver
    "jinja2",  # resolver
    "markupsafe",  # resolver (Jinja2's)
    "uvicorn",  # resolver
    "httptools",  # resolver (uvicorn's parser)
    "uvloop",  # resolver (uvicorn's loop)
    "openpyxl",  # xlsx
    "psycopg",  # postgres
    "psycopg_binary",  # postgres (psycopg's libpq wheel)
    "alembic",  # postgres
    "sqlalchemy",  # postgres (alembic's)
    "mako",  # postgres (alembic's)
    "pika",  # amqp
)

_SITECUSTOMIZE = '''\
"""Written by tests/support/extras.py: these top-level modules are "not installed"."""
import sys

BLOCKED = frozenset({blocked!r})
BLOCKED_LOOKUPS = []


class _NotInstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            BLOCKED_LOOKUPS.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
'''


def blocked_env(tmp: Path, blocked: Iterable[str] = OPTIONAL_MODULES) -> dict[str, str]:
    """An environment whose Python processes cannot import the ``blocked`` modules."""
    site = tmp / "no-extras"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(blocked=sorted(blocked)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    paths = [str(site), str(ROOT), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def run_blocked(
    tmp: Path,
    *args: str,
    blocked: Iterable[str] = OPTIONAL_MODULES,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` (the ``saltgw`` command) without the ``blocked`` modules."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=blocked_env(tmp, blocked),
        timeout=timeout,
    )


def start_blocked(
    tmp: Path, *args: str, log: Path, blocked: Iterable[str] = OPTIONAL_MODULES
) -> subprocess.Popen[bytes]:
    """``saltgw ARGS`` running in the background without the ``blocked`` modules; its output
    appended to ``log``. Stop it with :func:`tests.support.procs.stop`."""
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=blocked_env(tmp, blocked),
        )
