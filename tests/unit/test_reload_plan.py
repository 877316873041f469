"""What a reload changes (gateway/reload.py ``plan_reload``): by device, and refusals naming
the sections that cannot change while the gateway runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from gateway.bridge.store import TraceStore
from gateway.config.models import config_model
from gateway.event_schemas import spec_for
from gateway.event_schemas.markdown import example_event
from gateway.reload import plan_reload
from gateway.topics import Topics


def _dev(dev_id: str, port: int = 1502, **extra: Any) -> dict[str, Any]:
    return {
        "id": dev_id,
        "driver": "modbus",
        "connection": {"type": "tcp", "host": "127.0.0.1", "port": port},
        "tags": {
            "count": {"table": "holding_register", "address": 0, "type": "uint32"},
            "weight_g": {"table": "holding_register", "address": 2, "type": "float32"},
        },
        **extra,
    }


BASE: dict[str, Any] = {
    "gateway": {"id": "gw-1", "enterprise": "8035", "site": "s", "line": "L1"},
    "devices": [_dev("cw1"), _dev("cw2", 1503), _dev("cw3", 1504)],
    "profiles": [
        {"profile": "checkweigher", "device": "cw1", "nominal_g": 400},
        {"profile": "checkweigher", "device": "cw2", "nominal_g": 400},
    ],
}


def _cfg(data: dict[str, Any]) -> Any:
    return config_model().model_validate(data)


def test_devices_added_removed_changed_and_untouched() -> None:
    new = copy.deepcopy(BASE)
    new["devices"] = [_dev("cw3", 1504), _dev("cw1"), _dev("cw2", 1599), _dev("cw4", 1505)]
    new["profiles"][0]["nominal_g"] = 500  # cw1: its profile changed
    plan = plan_reload(_cfg(BASE), _cfg(new))
    assert plan.refusals == []
    assert (plan.added, plan.removed) == (["cw4"], [])
    assert sorted(plan.changed) == ["cw1", "cw2"]
    assert plan.unchanged == ["cw3"]  # moved in the list, same entry: keeps running
    new["devices"] = new["devices"][:2]
    assert plan_reload(_cfg(BASE), _cfg(new)).removed == ["cw2"]


def test_the_same_map_changes_nothing() -> None:
    plan = plan_reload(_cfg(BASE), _cfg(copy.deepcopy(BASE)))
    assert (plan.added, plan.removed, plan.changed, plan.refusals) == ([], [], [], [])
    assert sorted(plan.unchanged) == ["cw1", "cw2", "cw3"]


def test_sections_that_cannot_change_live_are_refused_by_name() -> None:
    new = copy.deepcopy(BASE)
    new["gateway"]["line"] = "L2"
    new["mqtt"] = {"url": "mqtt://10.0.0.1:1883"}
    new["journal"] = {"path": "elsewhere.db"}
    new["simulators"] = []  # not used by saltgw run: ignored
    refusals = plan_reload(_cfg(BASE), _cfg(new)).refusals
    assert [r.split(":")[0] for r in refusals] == ["gateway", "mqtt", "journal"]
    assert all("restart it to apply" in r for r in refusals)


def test_telemetry_tags_cannot_change_live() -> None:
    old = copy.deepcopy(BASE)
    old["telemetry"] = {}
    old["devices"][1]["telemetry"] = {"tags": ["weight_g"]}
    new = copy.deepcopy(old)
    new["devices"][1]["telemetry"] = {"tags": ["weight_g", "count"]}
    new["devices"][0]["tags"]["extra"] = {"table": "holding_register", "address": 9,
                                          "type": "uint16"}  # fmt: skip
    plan = plan_reload(_cfg(old), _cfg(new))
    assert len(plan.refusals) == 1 and plan.refusals[0].startswith("devices (cw2)")
    assert "cw1" in plan.changed  # its tags changed, not what its telemetry reports


def test_the_bridge_stores_reload_events(tmp_path: Path) -> None:
    """config.reload and alarm.config are stored by a bridge, not quarantined."""
    topics = Topics("salt/v1", "8035", "daiyue", "L1", "gw-1")
    messages = []
    for n, etype in enumerate(("config.reload", "alarm.config"), start=1):
        event = {**example_event(spec_for(etype), n), "seq": n}
        event["id"] = f"{event['id'][:-1]}{n}"  # two events, not one delivered twice
        messages.append((topics.event(etype), json.dumps(event).encode()))
    store = TraceStore(tmp_path / "bridge.db", track_seq=False)
    try:
        got = store.ingest(messages)
    finally:
        store.close()
    assert (got.accepted, got.quarantined) == (2, 0), got
