"""A web surface of ``saltgw demo`` in its own process (as deployed): ``saltgw resolver`` or
``saltgw console`` started with a config the demo wrote, its ``NAME: http://HOST:PORT/`` line
waited for (bounded) and passed on, its output drained, and the process stopped (SIGTERM, then
SIGKILL after a bound) when the demo ends; a demo killed with SIGKILL takes it along
(gateway/orphan.py). Used by gateway/demo_resolver.py and
gateway/demo_console.py."""

from __future__ import annotations

import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO

from gateway.config.extras import missing_modules
from gateway.orphan import PARENT_ENV

__all__ = ["served_child", "web_extra_missing"]

log = logging.getLogger(__name__)

START_TIMEOUT_SECS = 30.0
STOP_TIMEOUT_SECS = 10.0


def web_extra_missing() -> bool:
    """waitress or Jinja2 (the ``resolver`` extra) is not installed."""
    return bool(missing_modules(("waitress", "jinja2")))


def _first_line(stream: IO[str], proc: subprocess.Popen[str], prefix: str) -> str | None:
    """The ``{prefix}URL`` line, or None when the process ends or stays silent too long."""
    deadline = time.monotonic() + START_TIMEOUT_SECS
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not sel.select(timeout=min(left, 0.5)):
                if proc.poll() is not None:
                    return None
                continue
            line = stream.readline()
            if not line:
                return None
            if line.startswith(prefix):
                return line.strip()
    return None


def _drain(stream: IO[str]) -> None:
    for _ in stream:  # keep the pipe from filling; the child logs to stderr
        pass


@contextmanager
def served_child(command: str, config: Path, out: TextIO) -> Iterator[str | None]:
    """Run ``saltgw COMMAND CONFIG``; yields its URL (``http://HOST:PORT/``) once it printed
    ``COMMAND: URL`` (passed on to ``out``), or None when it could not start (said on
    ``out``: the demo goes on without it)."""
    prefix = f"{command}: "
    env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-level", "warning", command, str(config)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        line = _first_line(proc.stdout, proc, prefix)
        if line is None:
            print(
                f"{command}: not started (saltgw {command} {config} exited "
                f"{proc.poll()}; see its messages above)",
                file=out,
                flush=True,
            )
            yield None
            return
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        print(line, file=out, flush=True)  # exactly 'COMMAND: http://HOST:PORT/' (contract)
        yield line[len(prefix) :]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killed", command, STOP_TIMEOUT_SECS)
                proc.kill()
                proc.wait()
