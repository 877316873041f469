"""The resolver of ``saltgw demo``: ``saltgw resolver`` in its own process (as deployed, QB/T
5279-2018 11.4: the public query server kept apart), over the public snapshot the demo's bridge
publishes, on a free loopback port. Its ``resolver: http://HOST:PORT/`` line is passed on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from gateway.demo_child import served_child, web_extra_missing

__all__ = ["demo_resolver"]

log = logging.getLogger(__name__)


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


@contextmanager
def demo_resolver(snapshot: Path, workdir: Path, out: TextIO) -> Iterator[str | None]:
    """Run ``saltgw resolver`` for the demo; yields its URL (``http://HOST:PORT/``), or None
    when it could not start (said on ``out``: the demo goes on without it)."""
    if web_extra_missing():
        print("resolver: not started (pip install 'saltgw[resolver]')", file=out, flush=True)
        yield None
        return
    workdir.mkdir(parents=True, exist_ok=True)
    with served_child("resolver", _write_config(snapshot, workdir), out) as url:
        yield url
