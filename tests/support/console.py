"""The web console's test set-up (docs/console.md): a trace store filled the way the bridge
fills it (contract events ingested, platform documents built, uploaded through a scripted
platform that rejects the first document, so one is quarantined), a users file made with the
console's own code, and a console file."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.bridge.config import BridgeSection, UploadRetrySection
from gateway.bridge.documents import DocumentBuilder
from gateway.bridge.store import TraceStore
from gateway.bridge.transport import Rejected
from gateway.bridge.upload import Uploader
from gateway.console.users import UsersFile
from tests.support.trace_events import TZ, BatchPlan, LineEvents, batch_events, payload
from tests.unit.test_bridge_delivery import Scripted

__all__ = ["PASSWORDS", "ConsoleData", "console_file", "fill_store", "make_users"]

PASSWORDS = {"olga": "operator-pw-1", "quinn": "quality-pw-1", "ada": "admin-pw-1"}
ROLES = {"olga": "operator", "quinn": "quality", "ada": "admin"}


@dataclass
class ConsoleData:
    store: Path | str  # a SQLite file or a postgresql:// URL
    plans: list[BatchPlan]
    quarantined: str  # the number of the document the platform rejected


def fill_store(path: Path | str, batches: tuple[str, ...] = ("20261122-L1-01", "20261122-L1-02"),
               bags: int = 80, key: bytes | None = None,
               plans: list[BatchPlan] | None = None) -> ConsoleData:  # fmt: skip
    """A trace store (a SQLite file, or a ``postgresql://`` URL with its chain ``key``) with
    ``batches`` (bags, cases, pallets, CCP, an outbound order each), their documents built and
    uploaded: the first rejected by the platform (quarantined), the others acknowledged.
    ``plans``: these events instead of new ones (two stores filled alike)."""
    if plans is None:
        f = LineEvents()
        plans = [batch_events(f, b, bags) for b in batches]
    store = TraceStore(path, chain_key=key)
    try:
        store.ingest([("t", payload(e)) for p in plans for e in p.events])
        bcfg = BridgeSection(store=path, codes_per_document=50)
        DocumentBuilder(store.db, bcfg, enterprise="8035", node="n", tz=TZ).build_ready(force=True)
        retry = UploadRetrySection(backoff_min_secs=0.001)
        script = Scripted([Rejected("batch not registered on the platform")])
        Uploader(store.db, script, retry, threading.Event()).run_once()
        (number,) = store.db.execute(
            "SELECT number FROM documents WHERE state='quarantined'"
        ).fetchone()
    finally:
        store.close()
    return ConsoleData(path, plans, number)


def make_users(path: Path) -> Path:
    users = UsersFile(path)
    for name, pw in PASSWORDS.items():
        users.set(name, ROLES[name], pw)  # type: ignore[arg-type]
    return path


def console_file(tmp: Path, store: Path, users: Path, broker_port: int, **extra: Any) -> Path:
    cfg = {
        "console": {
            "listen": "127.0.0.1:0",
            "users": str(users),
            "store": str(store),
            "broker": f"mqtt://127.0.0.1:{broker_port}",
            "enterprise": "8035",
            "site": "daiyue",
            "line": "L1",
            "timezone": "+08:00",
            **extra,
        }
    }
    path = tmp / "console.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path
