"""Poison messages never stop anything: a running ``saltgw run`` with a bridge gets, at QoS 1 on
its event topic, a payload nested 5,000 deep (RecursionError in ``json.loads`` before), bytes
that are not UTF-8, a 2 MB payload, valid JSON of the wrong shape and a well-formed event from a
gateway the bridge does not know (issue 15: stored, before). The gateway keeps running
and ready, each message is quarantined with its reason and counted on ``/metrics``, a valid
event after them is stored, and after a restart none of them comes again (each was
acknowledged)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.support.bridge_env import Publisher, known_gateway, wait
from tests.support.broker import Mosquitto
from tests.support.gateway_proc import GatewayProc, metric
from tests.support.trace_events import LineEvents, payload

pytestmark = pytest.mark.e2e

TOPIC = "salt/v1/8035/daiyue/L1/event/pack/bag"
POISON = {
    "too_deep": b"[" * 5000,
    "not_json": b"\xff\xfe\x00 not UTF-8",
    "too_large": b'"' + b"x" * (2 * 1024 * 1024) + b'"',
    "schema": json.dumps({"id": 1, "type": "pack.bag", "data": "not an object"}).encode(),
    # a well-formed pack.bag from a gateway the bridge does not know (issue 15)
    "unauthenticated": payload(
        LineEvents(gateway="not-our-gateway").make("pack.bag", {"code": "8035FORGED01"}, "B1"),
        key=b"the-attackers-own-key-0123456789",
    ),
}


def _config(tmp: Path, port: int) -> Path:
    cfg = {
        "gateway": {"id": "gw-poison", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {
            "url": f"mqtt://127.0.0.1:{port}",
            "reconnect_min_secs": 0.2,
            "reconnect_max_secs": 1,
        },
        "journal": {"path": str(tmp / "journal.db")},
        "bridge": {
            "store": str(tmp / "bridge.db"),
            "max_delay_secs": 0.3,
            "gateways": [known_gateway(tmp)],  # gw-test-1, the test line's (its key)
        },
    }
    path = tmp / "poison.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rows(store: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(store) as db:
        return db.execute(sql).fetchall()


def test_poison_is_quarantined_acknowledged_and_never_stops_the_gateway(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    store = tmp_path / "bridge.db"
    gw = GatewayProc(_config(tmp_path, mosquitto.port), tmp_path / "saltgw.log").start()
    pub = Publisher(mosquitto.port)
    try:
        gw.wait_serving()
        wait(lambda: gw.healthz()[0] == 200, 30, "the gateway ready (bridge subscribed)")
        for body in POISON.values():
            pub.publish(TOPIC, body)
        f = LineEvents()
        good = f.make("pack.bag", {"code": "8035POISON0001"}, "B1")
        pub.publish(TOPIC, payload(good))

        def stored() -> bool:
            return bool(_rows(store, f"SELECT 1 FROM events WHERE id='{good['id']}'"))

        wait(stored, 30, "the valid event after the poison stored")
        rows = _rows(store, "SELECT kind, reason, size, length(payload) FROM quarantine")
        assert sorted(r[0] for r in rows) == sorted(POISON), rows
        by_kind = {r[0]: r for r in rows}
        assert "nested 5000 deep" in str(by_kind["too_deep"][1])
        assert "not JSON" in str(by_kind["not_json"][1])
        assert by_kind["too_large"][2] == len(POISON["too_large"])
        assert by_kind["too_large"][3] == 64 * 1024  # the payload kept is capped
        assert "(event): 'seq' is a required property" in str(by_kind["schema"][1])
        assert "gateway 'not-our-gateway', which this bridge does not know" in str(
            by_kind["unauthenticated"][1]
        )
        assert not _rows(store, "SELECT 1 FROM codes WHERE code='8035FORGED01'")
        assert gw.running()
        code, body = gw.healthz()
        assert code == 200, body
        m = gw.metrics()
        for kind in POISON:
            assert metric(m, "saltgw_bridge_quarantined_messages", f'{{reason="{kind}"}}') == 1
        assert gw.stop() == 0

        gw.start()  # the persistent session would hold anything not acknowledged
        gw.wait_serving()
        wait(lambda: gw.healthz()[0] == 200, 30, "the gateway ready again")
        after = f.make("pack.bag", {"code": "8035POISON0002"}, "B1")
        pub.publish(TOPIC, payload(after))
        wait(
            lambda: bool(_rows(store, f"SELECT 1 FROM events WHERE id='{after['id']}'")),
            30,
            "the event after the restart stored",
        )
        assert len(_rows(store, "SELECT 1 FROM quarantine")) == len(POISON)
        assert gw.running()
    finally:
        pub.close()
        if gw.running():
            gw.stop()
