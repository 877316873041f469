import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.events import Event, EventDraft, format_ts, uuid7
from gateway.topics import Topics


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    assert len(set(ids)) == 200
    assert [u.int >> 80 for u in ids] == sorted(u.int >> 80 for u in ids)


def test_ts_has_milliseconds_and_offset() -> None:
    cst = timezone(timedelta(hours=8))
    ts = datetime(2026, 11, 22, 10, 15, 30, 123456, tzinfo=cst)
    assert format_ts(ts) == "2026-11-22T10:15:30.123+08:00"
    with pytest.raises(ValueError, match="offset"):
        format_ts(datetime(2026, 1, 1))


def test_draft_type_must_be_group_kind() -> None:
    with pytest.raises(ValueError, match=r"group\.kind"):
        EventDraft("netcontent", datetime.now(UTC), {})


def test_envelope_round_trip_has_exactly_the_contract_keys() -> None:
    ev = Event(
        "id1",
        "gw",
        7,
        "ccp.iodine",
        "2026-11-22T10:15:30.123+08:00",
        "8035",
        "daiyue",
        "L1",
        None,
        "B1",
        {"value": 25.0},
    )
    obj = json.loads(ev.to_json())
    assert set(obj) == {
        "id",
        "gateway",
        "seq",
        "type",
        "ts",
        "enterprise",
        "site",
        "line",
        "device",
        "batch",
        "data",
    }
    assert Event.from_json(ev.to_json()) == ev


def test_topic_tree() -> None:
    t = Topics("salt/v1", "8035", "daiyue", "L1", "gw-1")
    assert t.event("ccp.net_content") == "salt/v1/8035/daiyue/L1/event/ccp/net_content"
    assert t.event("alarm.ccp") == "salt/v1/8035/daiyue/L1/alarm/ccp"
    assert t.state("cw1") == "salt/v1/8035/daiyue/L1/state/cw1"
    assert t.kpi() == "salt/v1/8035/daiyue/L1/kpi"
    assert t.status() == "salt/v1/8035/daiyue/gateway/gw-1/status"
