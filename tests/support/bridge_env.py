"""Bridge test environment: configs with a bridge section, a line publisher on a real broker,
bounded waits and store queries."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from gateway.bridge.service import Bridge
from gateway.config.models import ConfigBase, config_model
from tests.support.bridge_docs import GS1_XSD
from tests.support.trace_events import TEST_GATEWAY, TEST_KEY


def known_gateway(tmp: Path, gateway: str = TEST_GATEWAY, key: bytes = TEST_KEY) -> dict[str, Any]:
    """A ``bridge.gateways`` entry for ``gateway`` signing with ``key`` (written to an
    owner-only file in ``tmp``)."""
    path = tmp / f"{gateway}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return {"id": gateway, "key_file": str(path)}


def bridge_config(tmp: Path, port: int, name: str, **bridge: Any) -> ConfigBase:
    """A gateway ``gw-{name}`` with a bridge that also stores the events of the test line's
    gateway (``TEST_GATEWAY``, signed with ``TEST_KEY``: tests/support/trace_events.py)."""
    bridge.setdefault("gateways", [known_gateway(tmp)])
    raw = {
        "gateway": {"id": f"gw-{name}", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{port}",
            "reconnect_min_secs": 0.2,
            "reconnect_max_secs": 1,
        },
        "journal": {"path": str(tmp / f"{name}-journal.db")},
        "bridge": {
            "store": str(tmp / f"{name}.db"),
            "node_id": name,
            "max_delay_secs": 0.3,
            "codes_per_document": 40,
            "epcis_xsd": str(GS1_XSD) if GS1_XSD.is_file() else None,
            "products": [{"id": "P400", "name": "精制盐", "net_content": "400g"}],
            "reconcile": {"interval_secs": 0.2},
            **bridge,
        },
    }
    return config_model().model_validate(raw)


@contextmanager
def directory_bridges(tmp: Path, port: int) -> Iterator[dict[str, Bridge]]:
    """One bridge per profile (``epcis``, ``platform``) on the broker at ``port``, each writing
    its documents into ``tmp/{profile}`` (acknowledged on write), connected and subscribed;
    stopped at the end."""
    bridges = {
        profile: Bridge(
            bridge_config(
                tmp,
                port,
                profile,
                profile=profile,
                upload={"type": "directory", "path": str(tmp / profile), "ack": "on_write"},
            ),
            host="127.0.0.1",
            port=port,
        ).start()
        for profile in ("epcis", "platform")
    }
    try:
        wait(lambda: all(b.consumer and b.consumer.subscribed.is_set() for b in bridges.values()),
             10, "bridges connected")  # fmt: skip
        yield bridges
    finally:
        for b in bridges.values():
            b.stop()


class Publisher:
    def __init__(self, port: int) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="test-line-publisher")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def q(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


DONE = "SELECT batch FROM batches WHERE completed IS NOT NULL ORDER BY batch"


def outbox(path: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(path.glob("*.xml*"))]
