"""The resolver of ``saltgw demo``: ``saltgw resolver`` in its own process (as deployed, QB/T
5279-2018 11.4: the public query server kept apart), over the public snapshot the demo's bridge
publishes, on a free loopback port. Its ``resolver: http://HOST:PORT/`` line is passed on."""

from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import IO, TextIO

__all__ = ["demo_resolver"]

log = logging.getLogger(__name__)

START_TIMEOUT_SECS = 30.0
STOP_TIMEOUT_SECS = 10.0
LINE = "resolver: "


def _write_config(snapshot: Path, workdir: Path) -> Path:
    cfg = {
        "resolver": {
            "listen": "127.0.0.1:0",
            "snapshot": str(snapshot.resolve()),
            "query_log": str((workdir / "demo-resolver-queries.db").resolve()),
            "reload_secs": 1.0,
        }
    }
    path = workdir / "demo-resolver.yaml"
    path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def _first_line(stream: IO[str], proc: subprocess.Popen[str]) -> str | None:
    """The ``resolver: URL`` line, or None when the process ends or stays silent too long."""
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
            if line.startswith(LINE):
                return line.strip()
    return None


def _drain(stream: IO[str]) -> None:
    for _ in stream:  # keep the pipe from filling; the resolver logs to stderr
        pass


@contextmanager
def demo_resolver(snapshot: Path, workdir: Path, out: TextIO) -> Iterator[str | None]:
    """Run ``saltgw resolver`` for the demo; yields its URL (``http://HOST:PORT/``), or None
    when it could not start (said on ``out``: the demo goes on without it)."""
    if find_spec("waitress") is None or find_spec("jinja2") is None:
        print("resolver: not started (pip install 'saltgw[resolver]')", file=out, flush=True)
        yield None
        return
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = _write_config(snapshot, workdir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "--log-level", "warning", "resolver", str(cfg)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        line = _first_line(proc.stdout, proc)
        if line is None:
            print(
                f"resolver: not started (saltgw resolver {cfg} exited "
                f"{proc.poll()}; see its messages above)",
                file=out,
                flush=True,
            )
            yield None
            return
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        print(line, file=out, flush=True)  # exactly 'resolver: http://HOST:PORT/' (contract)
        yield line[len(LINE) :]
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                log.warning("resolver did not stop within %.0f s: killed", STOP_TIMEOUT_SECS)
                proc.kill()
                proc.wait()
