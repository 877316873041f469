"""The event reference (gateway/event_schemas, docs/events.md) against what the code emits.

Every event the profile golden cases, the aggregation golden cases and a run of every other
producer (line PLC, feeding, checkweigher, scanners, KPIs, the runtime's device alarms, the
bridge's upload alarm) give is journaled into real envelopes and validated *strictly* (a field
the reference does not list fails); every type the source can emit has a schema; bad payloads
are refused; docs/events.md is current.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import json
import re
import sqlite3
from datetime import UTC as TZ_UTC
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from drivers.base import MethodResult, Reading
from gateway.aggregation import Slot
from gateway.bridge.gaps import GapTracker
from gateway.bridge.reconcile import BatchReport, Reconciler
from gateway.bridge.schema import SCHEMA as STORE_SCHEMA
from gateway.command_auth import Authoriser
from gateway.commands import CommandRouter
from gateway.config.loader import load_config
from gateway.event_schemas import (
    EVENT_TYPES,
    MESSAGES,
    SPECS,
    InvalidEvent,
    event_errors,
    events_schema,
    render_markdown,
    schema_for,
    validate_event,
    validate_message,
)
from gateway.event_schemas.markdown import example_event
from gateway.event_schemas.registry import DRAFT
from gateway.events import EventDraft, Origin
from gateway.journal import Journal
from gateway.runtime import Gateway
from gateway.supervisor import DeviceState, State
from gateway.topics import Topics
from gateway.traceline import close_trace_lines
from tests.unit.test_command_methods import MAP as METHOD_MAP
from tests.unit.test_command_methods import MethodPlc
from tests.unit.test_command_methods import router as method_router
from tests.unit.test_profile_cases import BASE, run_case
from tests.unit.test_profile_cases import CASES as PROFILE_CASES
from tests.unit.test_trace_profiles import TZ, Line, bag

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "events.md"
AGG_CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "aggregation_cases" / "cases.yaml").read_text(encoding="utf-8")
)
ORIGIN = Origin("gw-test-1", "8035", "daiyue", "L1")
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=TZ)
FILE_SUFFIXES = (".py", ".yaml", ".yml", ".db", ".json", ".xml", ".xsd", ".md", ".csv", ".txt")
#: The contract's list of event types (../shared/design/contract.md, "MQTT topic tree").
CONTRACT_TYPES = {
    "ccp.metal_detector",
    "ccp.magnet_rod",
    "ccp.net_content",
    "ccp.sieve",
    "ccp.iodine",
    "feed.material",
    "batch.start",
    "batch.end",
    "pack.bag",
    "pack.noread",
    "pack.reject",
    "pack.case",
    "pack.pallet",
    "pack.unpack",
    "ship.outbound",
    "ship.inbound",
    "recall.scan",
    "alarm.duplicate_code",
    "alarm.invalid_code",
    "alarm.aggregation",
    "alarm.ccp",
    "alarm.device",
    "alarm.scan_rate",
}


# -- producing events ----------------------------------------------------------------------------
class Produced:
    """Drafts from every producer, each with where it came from, journaled at the end."""

    def __init__(self) -> None:
        self.drafts: list[tuple[str, EventDraft]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[tuple[str, dict[str, Any]]] = []  # (message name, payload)

    def add(self, source: str, drafts: list[EventDraft]) -> list[EventDraft]:
        self.drafts.extend((source, d) for d in drafts)
        return drafts

    def journal(self, path: Path) -> None:
        with Journal(path, ORIGIN) as journal:
            events = journal.append([d for _, d in self.drafts]).result(timeout=30)
        for (source, _), ev in zip(self.drafts, events, strict=True):
            self.events.append((source, json.loads(ev.to_json())))


def profile_golden_cases(out: Produced) -> None:
    for case in sorted(p for p in PROFILE_CASES.iterdir() if p.is_dir()):
        drafts = [
            EventDraft(e["type"], BASE + timedelta(seconds=e["t"]), e["data"], device=e["device"])
            for e in run_case(case)
        ]
        out.add(f"profile case {case.name}", drafts)


def _code(code: str) -> str:
    """A golden case's code (B1, C1, P1) as a real traceability code of enterprise 8035."""
    return "8035" + code.upper().rjust(8, "0")


def _codes(value: Any) -> Any:
    if isinstance(value, list):
        return [_code(c) for c in value]
    return _code(value)


def aggregation_golden_case(case: dict[str, Any], store: Path, out: Produced) -> None:
    """The case's `do` step through the packing profiles, which turn the state machine's
    results into events (setup steps go to the state machine directly, as in
    test_aggregation.py)."""
    line = Line(store)
    line.add("scan1", "bag_scanner", sku="s400")
    packers = {
        "case": line.add("case1", "case_packer", bags_per_case=3),
        "pallet": line.add("pal1", "pallet_builder", cases_per_pallet=2),
    }
    agg = packers["case"].trace.agg
    ts = T0
    source = f"aggregation case {case['name']!r}"
    for step in [*case.get("setup", []), case["do"]]:
        ts += timedelta(seconds=1)
        ((kind, args),) = step.items()
        last = step is case["do"]
        if kind == "commission" and last:  # the bag scanner, as on the line
            for code in args["codes"]:
                out.add(source, line.scan("scan1", _code(code)))
        elif kind == "commission":
            for code in args["codes"]:
                agg.commission(_code(code), batch=args.get("batch"), sku=args.get("sku"), ts=ts)
        elif kind == "reject" and last:  # the reject chute's scanner, as on the line
            line.add("rej1", "bag_scanner", action="reject")
            out.add(source, line.scan("rej1", _code(args["code"])))
        elif kind == "reject":
            agg.reject(_code(args["code"]), ts)
        elif kind == "bind":
            res = agg.bind(
                _code(args["parent"]),
                _codes(list(args["children"])),
                level=args["level"],
                expected=args["expected"],
                ts=ts,
                partial_reason=args.get("partial_reason"),
            )
            if last:
                slots = [Slot(i, c, None, None, "") for i, c in enumerate(res.children)]
                out.add(source, packers[args["level"]]._result(res, slots, ts))
        elif kind in ("close_partial", "unpack"):
            level = "pallet" if args["parent"].startswith("P") else "case"
            if last:
                act = getattr(packers[level], kind)
                out.add(source, act(_code(args["parent"]), args["reason"], "wang", ts))
            else:
                getattr(agg, kind)(_code(args["parent"]), args["reason"], ts)
        else:
            raise AssertionError(f"unknown step {kind}")
    close_trace_lines(store)


def packing_line(store: Path, out: Produced) -> None:
    """Bags → cases → pallets → outbound, inbound and recall, with the faults on the way."""
    line = Line(store)
    src = "trace line"
    line.add("scan1", "bag_scanner", sku="s400")
    line.add("rej1", "bag_scanner", action="reject")
    case1 = line.add("case1", "case_packer", bags_per_case=3, max_pending=4)
    pal1 = line.add("pal1", "pallet_builder", cases_per_pallet=2)
    line.add("out1", "outbound_scanner")
    line.add("in1", "inbound_scanner", codes={"own_enterprise_only": False})
    line.add("rc1", "recall_scanner", order="RC-2026-003")

    def scan(device: str, text: str | None) -> list[EventDraft]:
        return out.add(src, line.scan(device, text))

    for i in range(3):
        scan("scan1", f"https://trace.example.cn/q?c={bag(i)}")
    scan("case1", "8035CASE000001")  # pack.case
    scan("scan1", bag(3))
    scan("scan1", None)  # pack.noread at the bag scanner
    scan("scan1", bag(3))  # alarm.duplicate_code
    scan("scan1", "8063ABCDEFGH12")  # alarm.invalid_code
    scan("case1", "8035CASE000002")  # short: bag 3 and three empty slots
    scan("pal1", "8035PALL000001")  # refused: an open case on the pallet
    out.add(src, case1.close_partial("8035CASE000002", "bag burst", "wang", line.t))
    out.add(src, case1.close_partial("8035CASE000099", "typo", None, line.t))  # refused
    for i in range(4, 7):
        scan("scan1", bag(i))
    scan("case1", None)  # label not read: pack.noread + label_noread
    for i in range(7, 10):
        scan("scan1", bag(i))
    scan("case1", "8035CASE000001")  # duplicate label
    scan("case1", "8035XYZ")  # invalid label
    for i in range(10, 16):
        scan("scan1", bag(i))
    scan("case1", "8035CASE000003")  # orphaned slots dropped first, then a case
    out.add(src, case1.resync(line.t))
    for code in ("8035CASE000001", "8035CASE000002", "8035CASE000003"):
        case1.trace.agg.push_slot("case", code, sku="s400", batch=None, ts=line.t)
    scan("pal1", "8035PALL000002")  # pack.pallet of two cases
    out.add(src, pal1.unpack("8035PALL000002", "wrong order", "li", line.t))
    out.add(src, pal1.unpack("8035PALL000002", "again", None, line.t))  # refused
    for i in range(16, 18):
        scan("scan1", bag(i))
    scan("rej1", bag(16))  # reject chute, a commissioned bag
    scan("rej1", "8035NEVERSEEN1")  # reject chute, a code never commissioned
    scan("out1", "8035CASE000001")  # no order yet: order and customer null
    scan("out1", "SO:SO-20261122-7|泰安市盐业公司")
    scan("out1", "8035CASE000003")
    scan("out1", bag(0))  # already shipped in case 1: alarm.duplicate_code
    scan("out1", "8035UNKNOWN0001")  # never commissioned: alarm.aggregation
    scan("in1", "8046ABCDEF123")  # another producer's code
    scan("in1", "ORDER:PO-77|久大(应城)制盐有限责任公司")
    scan("in1", "8035CASE000003")
    scan("rc1", "8035CASE000003")
    scan("rc1", bag(17))
    close_trace_lines(store)


def scan_kpi(store: Path, out: Produced) -> None:
    line = Line(store)
    line.add("scan1", "bag_scanner")
    kpi = line.add("cw1", "scan_kpi", scan_rate_threshold=0.9, min_bags=10, window_secs=30)
    count, now = 100, T0
    kpi.on_reading(Reading("cw1", now, {"count": count}))
    for i in range(80):
        count += 1
        kpi.on_reading(Reading("cw1", now, {"count": count}))
        line.scan("scan1", bag(i) if i >= 40 or i % 4 else None)
        now += timedelta(seconds=1)
        out.add("scan_kpi", kpi.on_tick(now))
    message = kpi.kpi_message(now)
    assert message is not None
    out.messages.append(("kpi", json.loads(json.dumps(message))))
    close_trace_lines(store)


def line_plc(out: Produced) -> None:
    from gateway.profiles.line_plc import LINE_PLC, LinePlcProfileConfig

    cfg = LinePlcProfileConfig.model_validate(
        {"profile": "line_plc", "device": "plc1", "counters_every_secs": 5}
    )
    tags = {"batch_number", "product", "shift", "state", "mode", "bag_count", "case_count"}
    prof: Any = LINE_PLC.create(cfg, LINE_PLC.bind(cfg.tags, tags | {"speed"}), TZ)
    prof.bind_line(SimpleNamespace(line="L1"))
    t = T0

    def feed(**values: Any) -> None:
        nonlocal t
        t += timedelta(seconds=1)
        out.add("line_plc", prof.on_reading(Reading("plc1", t, values)))
        out.add("line_plc", prof.on_tick(t))

    feed(batch_number="B0", state=6, mode=1, bag_count=10, case_count=0, product="盐", shift=1)
    for n in range(1, 12):
        feed(bag_count=10 + n, speed=150.0)
    feed(batch_number="20261122-L1-01", state=11)
    feed(state=42, mode=7)  # numbers PackML does not define
    feed(bag_count=5, case_count=1)  # a counter reset
    for n in range(6):
        feed(bag_count=6 + n)
    feed(batch_number="")


def material_feed(out: Produced) -> None:
    from gateway.profiles.material_feed import MATERIAL_FEED, MaterialFeedProfileConfig

    cfg = MaterialFeedProfileConfig.model_validate({"profile": "material_feed", "device": "plc1"})
    tags = {"feed_count", "feed_material", "feed_lot", "feed_qty_kg", "feed_point"}
    prof = MATERIAL_FEED.create(cfg, MATERIAL_FEED.bind(cfg.tags, tags), TZ)
    readings = [
        {"feed_count": 3},
        {"feed_count": 4, "feed_material": "原盐", "feed_qty_kg": 800, "feed_lot": "YS-01"},
        {"feed_count": 5, "feed_material": "碘酸钾 (KIO3)", "feed_qty_kg": 0.8, "feed_lot": ""},
        {"feed_count": 6, "feed_qty_kg": -1.0},
        {"feed_count": 7, "feed_material": " ", "feed_qty_kg": 1.0},
    ]
    for i, values in enumerate(readings):
        out.add(
            "material_feed", prof.on_reading(Reading("plc1", T0 + timedelta(seconds=i), values))
        )


def checkweigher(out: Produced) -> None:
    from gateway.profiles.checkweigher import CHECKWEIGHER, CheckweigherProfileConfig

    cfg = CheckweigherProfileConfig.model_validate(
        {"profile": "checkweigher", "device": "cw1", "nominal_g": 400}
    )
    tags = CHECKWEIGHER.bind(cfg.tags, {"count", "weight_g", "rejected"})
    prof = CHECKWEIGHER.create(cfg, tags, TZ)
    steps: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"count": 10, "weight_g": 401.0}, {}),
        ({"count": 11, "weight_g": 402.5}, {}),
        ({"count": 14, "weight_g": 380.0, "rejected": True}, {}),  # missed 2, fails, rejected
        ({"count": 15}, {"weight_g": "NaN"}),
    ]
    for i, (values, errors) in enumerate(steps):
        reading = Reading("cw1", T0 + timedelta(seconds=i), values, errors)
        out.add("checkweigher", prof.on_reading(reading))


def bridge_seq_gap(out: Produced) -> None:
    """alarm.seq_gap as the bridge raises it (gateway/bridge/gaps.py): missing, then filled."""
    tracker = GapTracker(grace_secs=1)
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(STORE_SCHEMA)
    with db:
        db.execute("BEGIN")
        tracker.observe(db, [("gw-1", 1, "8035", "s"), ("gw-1", 4, "8035", "s")], 0.0)
    [gap], _ = tracker.due(db, 5.0)
    missing = tracker.alarm_data(gap, "missing")
    with db:
        db.execute("BEGIN")
        [filled] = tracker.observe(db, [("gw-1", 2, "8035", "s"), ("gw-1", 3, "8035", "s")], 6.0)
    data = [missing, tracker.alarm_data(filled, "filled")]
    out.add("bridge", [EventDraft("alarm.seq_gap", T0, d) for d in data])


def bridge_upload(out: Produced) -> None:
    """alarm.upload as the bridge raises it (gateway/bridge/service.py, reconcile.py)."""
    raised: list[dict[str, Any]] = []
    rec = Reconciler(None, 60.0, raised.append)  # type: ignore[arg-type]
    for state in ("incomplete", "complete"):
        rep = BatchReport("20261122-L1-01", 412, 412, 412, 400, 0, 3, True, 0.0)
        rec._raise(rep, state)
    out.add("bridge", [EventDraft("alarm.upload", T0, data) for data in raised])


def runtime(tmp: Path, out: Produced) -> None:
    """The gateway's own alarm.device (bad tags, device states) and state messages, and the
    envelopes it stamps with the running batch: a real Gateway with no devices, not started."""
    cfg_file = tmp / "gw.yaml"
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "gateway": {
                    "id": "gw-test-1",
                    "enterprise": "8035",
                    "site": "daiyue",
                    "line": "L1",
                },
                "mqtt": {"url": "mqtt://127.0.0.1:9"},
                "journal": {"path": str(tmp / "runtime-journal.db")},
            }
        )
    )
    gw = Gateway(load_config(cfg_file))
    controls: list[tuple[str, bytes]] = []
    gw.forwarder.publish_control = lambda topic, body, retain=False: controls.append((topic, body))

    async def go() -> None:
        gw._loop = asyncio.get_running_loop()
        start = EventDraft("batch.start", T0, {"batch": "B9", "product": None, "line": "L1",
                                                 "shift": None, "resumed": False},
                           device="plc1", batch="B9")  # fmt: skip
        await gw.accept([start])
        await gw._on_reading(Reading("cw1", T0, {"count": 1}, {"weight_g": "NaN (not a value)"}))
        await gw._on_reading(Reading("cw1", T0, {"count": 2, "weight_g": 401.0}))
        offline = DeviceState("cw1", State.OFFLINE, "connection refused")
        gw._on_state(DeviceState("cw1", State.ONLINE, None), None)
        gw._on_state(offline, DeviceState("cw1", State.ONLINE, None))
        gw._on_state(DeviceState("cw1", State.ONLINE, None), offline)
        # rate-limited (gateway/supervisor.py): no alarm, then one counting what it held back
        gw._on_state(DeviceState("cw1", State.FAULT, "exception 4", alarm=False), offline)
        gw._on_state(DeviceState("cw1", State.FAULT, "exception 4", suppressed=3), offline)
        pending = [t for t in asyncio.all_tasks() if t.get_name().startswith("alarm-")]
        await asyncio.gather(*pending)

    gw.journal.open()
    try:
        asyncio.run(go())
        reader = gw.journal.reader()
        rows = reader.after(0, 1000)
        reader.close()
    finally:
        gw.journal.close()
    out.events.extend(("runtime", json.loads(r.payload)) for r in rows)
    out.messages.extend(
        ("state", json.loads(body)) for topic, body in controls if "/state/" in topic
    )


def reloads(tmp: Path, out: Produced) -> None:
    """config.reload and alarm.config as a real Gateway emits them (gateway/reload.py): a
    device added, a refused edit, the device removed again."""
    base: dict[str, Any] = {
        "gateway": {"id": "gw-test-1", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "mqtt": {"url": "mqtt://127.0.0.1:9"},
        "journal": {"path": str(tmp / "reload-journal.db")},
    }
    device = {
        "id": "cw9",
        "driver": "modbus",
        "connection": {"type": "tcp", "host": "127.0.0.1", "port": 9},
        "tags": {"count": {"table": "holding_register", "address": 0, "type": "uint32"}},
    }
    cfg_file = tmp / "reload.yaml"
    cfg_file.write_text(yaml.safe_dump(base))
    gw = Gateway(load_config(cfg_file), map_file=str(cfg_file), map_sha256="0" * 64)
    gw.forwarder.publish_control = lambda topic, body, retain=False: None

    async def go() -> None:
        gw._loop = asyncio.get_running_loop()
        gw._reloadable = True  # as in Gateway.run, once the devices started
        cfg_file.write_text(yaml.safe_dump({**base, "devices": [device]}))
        assert (await gw.reload("signal SIGHUP"))["added"] == ["cw9"]
        cfg_file.write_text(yaml.safe_dump({**base, "devices": [{**device, "driver": "nope"}]}))
        assert not (await gw.reload("signal SIGHUP"))["ok"]
        cfg_file.write_text(yaml.safe_dump(base))
        assert (await gw.reload("tester (uid 1, pid 2, saltgw reload)"))["removed"] == ["cw9"]

    gw.journal.open()
    try:
        asyncio.run(go())
        reader = gw.journal.reader()
        rows = reader.after(0, 1000)
        reader.close()
    finally:
        gw.journal.close()
    out.events.extend(("reload", json.loads(r.payload)) for r in rows)


def command_responses(out: Produced) -> None:
    topics = Topics("salt/v1", "8035", "daiyue", "L1", "gw-test-1")
    sent: list[bytes] = []
    router = CommandRouter(
        topics, TZ, lambda topic, body: sent.append(body), {}, auth=Authoriser.open()
    )
    for payload in (b"not json", b'{"id": "m1", "command": "start_batch", "batch": "B1"}'):
        asyncio.run(router.handle(f"{topics.line_root}/cmd/plc1", payload))
    # a command bound to a method: its answer (Good, then Bad) in the response's `method`
    bad = MethodResult(False, "BadInvalidState", 0x80AF0000, (), ())
    for answer in (MethodResult(True, "Good", 0, (True, "B1", None)), bad):
        with_method, bodies = method_router(MethodPlc(answer), METHOD_MAP)
        payload = b'{"id": "m2", "command": "start_batch", "batch": "B1"}'
        asyncio.run(with_method.handle(f"{topics.line_root}/cmd/plc1", payload))
        sent.extend(bodies)
    out.messages.extend(("response", json.loads(b)) for b in sent)


def records(out: Produced) -> None:
    """The record router (gateway/records/router.py) as MES/LIMS messages drive it: every
    record kind, from the documented examples, optional fields left out."""
    from gateway.events import Event
    from gateway.records.journaled import JournaledRecords
    from gateway.records.router import RecordRouter
    from gateway.topics import Topics

    async def append(drafts: list[EventDraft]) -> list[Event]:
        out.add("records", drafts)
        return [Event("x", "gw", len(out.drafts), d.type, "", "", "", "", None, None)
                for d in drafts]  # fmt: skip

    sent: list[bytes] = []
    router = RecordRouter(
        Topics("salt/v1", "8035", "s", "L1", "gw"), BASE.tzinfo or TZ_UTC,
        lambda t, b: sent.append(b), append, Authoriser.open(), JournaledRecords(None),
        clock=lambda: BASE.timestamp(),
    )  # fmt: skip
    for spec in SPECS:
        if spec.group != "record":
            continue
        data = {k: v for k, v in spec.example["data"].items()
                if v is not None and k not in ("issuer", "source")}  # fmt: skip
        body = json.dumps({"id": f"m-{spec.kind}", **data}, ensure_ascii=False).encode()
        got = asyncio.run(router.handle(f"salt/v1/8035/s/L1/record/{spec.kind}", body))
        assert got["status"] == "accepted", got
        kind, last = spec.kind, data
    # the answers: accepted, a duplicate, a bad record, not JSON, an unknown kind
    again = json.dumps({**last, "id": "m-again", "record_id": got["record_id"]}).encode()
    asyncio.run(router.handle(f"salt/v1/8035/s/L1/record/{kind}", again))
    for kind, bad in (("release", b'{"id": "m-bad", "batch": "B1"}'), ("release", b"[1"),
                      ("recipe", b'{"id": "m-x"}')):  # fmt: skip
        asyncio.run(router.handle(f"salt/v1/8035/s/L1/record/{kind}", bad))
    answers = [json.loads(b) for b in sent]
    assert [a["status"] for a in answers[-4:]] == ["accepted"] + ["rejected"] * 3, answers
    assert answers[-4]["duplicate"] is True
    out.messages.extend(("record_response", a) for a in answers)


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> Produced:
    tmp = tmp_path_factory.mktemp("events")
    out = Produced()
    profile_golden_cases(out)
    for i, case in enumerate(AGG_CASES):
        aggregation_golden_case(case, tmp / f"agg-{i}.db", out)
    packing_line(tmp / "trace.db", out)
    scan_kpi(tmp / "kpi.db", out)
    line_plc(out)
    material_feed(out)
    checkweigher(out)
    bridge_upload(out)
    bridge_seq_gap(out)
    records(out)
    out.journal(tmp / "journal.db")
    runtime(tmp, out)
    reloads(tmp, out)
    command_responses(out)
    telemetry(tmp / "telemetry.db", out)
    return out


def telemetry(path: Path, out: Produced) -> None:
    """The UNS output's payloads (gateway/telemetry/uns/) of real records from the store:
    good, bad and stale tags, and a record folded by the full policy."""
    from datetime import UTC, datetime

    from gateway.telemetry.feed import StoreFeed
    from gateway.telemetry.record import Quality, TagMeta, TagPoint
    from gateway.telemetry.store import TelemetryStore
    from gateway.telemetry.uns import record_payload, tag_payload

    t0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
    metas = [TagMeta("cw1", "count", "int"), TagMeta("cw1", "weight_g", "float", "g")]
    store = TelemetryStore(path, metas, ["uns"], max_records=10, clock=t0.timestamp).open()
    store.append("cw1", t0, {"count": TagPoint(1, Quality.GOOD)})
    store.append("cw1", t0, {"weight_g": TagPoint(None, Quality.BAD)})
    store.append("cw1", t0, {"count": TagPoint(1, Quality.STALE)})
    for i in range(10):
        store.append(
            "cw1", t0, {"count": TagPoint(i, Quality.GOOD), "x": TagPoint("s", Quality.GOOD)}
        )
    assert store.flush(5)
    recs = StoreFeed(store, "uns").read(100)
    store.close()
    assert any(r.coalesced for r in recs)
    for r in recs:
        out.messages.append(("tags", json.loads(record_payload(r))))
        for p in r.points.values():
            out.messages.append(
                ("tag", json.loads(tag_payload(p, "2026-11-22T10:00:00.000+08:00", "g")))
            )


# -- the gateway's output against the reference --------------------------------------------------
def test_every_event_produced_is_valid_strictly(produced: Produced) -> None:
    failures = []
    for source, ev in produced.events:
        for err in event_errors(ev, strict=True):
            failures.append(f"{source}: {ev['type']}: {err}\n    data: {json.dumps(ev['data'])}")
    assert not failures, f"{len(failures)} invalid events:\n" + "\n".join(failures[:40])


def test_the_golden_cases_and_producers_emit_every_type(produced: Produced) -> None:
    seen = {ev["type"] for _, ev in produced.events}
    assert seen == set(EVENT_TYPES), {
        "no schema": sorted(seen - set(EVENT_TYPES)),
        "never produced here": sorted(set(EVENT_TYPES) - seen),
    }
    sources = {source.split(" ")[0] for source, _ in produced.events}
    assert {"profile", "aggregation", "runtime", "bridge"} <= sources


def test_the_aggregation_golden_cases_give_events(produced: Produced) -> None:
    per_case: dict[str, list[str]] = {}
    for source, ev in produced.events:
        if source.startswith("aggregation case"):
            per_case.setdefault(source, []).append(ev["type"])
    assert len(per_case) == len(AGG_CASES)
    for name, expect in (
        ("a full case binds and closes", ["pack.case"]),
        ("refused - child already bound in another live case", ["alarm.aggregation"]),
        ("a pallet binds closed cases", ["pack.pallet"]),
        ("an operator closes an open case as partial", ["pack.case"]),
        ("unpacking a pallet frees its cases, which keep their bags", ["pack.unpack"]),
        ("refused - commissioning a code the line knows already", ["alarm.duplicate_code"]),
        ("a rejected bag is taken out of its case", ["pack.reject"]),
    ):
        assert per_case[f"aggregation case {name!r}"] == expect, name


def test_runtime_envelopes_carry_the_running_batch(produced: Produced) -> None:
    runtime = [ev for source, ev in produced.events if source == "runtime"]
    assert [ev["type"] for ev in runtime] == ["batch.start"] + ["alarm.device"] * 5
    assert {ev["batch"] for ev in runtime} == {"B9"}
    states = [ev["data"]["state"] for ev in runtime[1:]]
    assert states == ["bad_value", "values_ok", "offline", "online", "fault"]
    assert runtime[-1]["data"]["suppressed"] == 3


def test_non_event_messages_match_their_schemas(produced: Produced) -> None:
    schemas = {m.name: m.schema for m in MESSAGES}
    names = {name for name, _ in produced.messages}
    assert names == set(schemas)
    for name, payload in produced.messages:
        validate_message(schemas[name], payload, strict_mode=True)


def _parse(path: Path) -> ast.Module:
    """``ast.parse`` with the garbage collector held off: a collection in the middle of CPython
    3.11's AST builder that runs finalisers (asyncio tasks an earlier test left, logging their
    destruction) upsets the builder's recursion count: "SystemError: AST constructor recursion
    depth mismatch" (seen in CI; CPython gh-106905)."""
    gc.collect()
    gc.disable()
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    finally:
        gc.enable()


def test_every_type_the_source_names_has_a_schema() -> None:
    """Type strings in gateway/ (literals, `KIND`/`kind` of the CCP profiles, f-string groups
    of EventDraft calls) against the registry."""
    groups = {t.split(".")[0] for t in EVENT_TYPES}
    literal = re.compile(rf"^({'|'.join(groups)})\.[a-z][a-z0-9_]*$")
    named: set[str] = set()
    dynamic_groups: set[str] = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        if "event_schemas" in path.parts:
            continue
        tree = _parse(path)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and literal.match(node.value)
                and not node.value.endswith(FILE_SUFFIXES)  # "line.yaml" names no event
            ):
                named.add(node.value)
            if isinstance(node, ast.Assign) and path.parent.name == "profiles":
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if {"KIND", "kind"} & set(targets) and isinstance(node.value, ast.Constant):
                    named.add(f"ccp.{node.value.value}")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "EventDraft"
                and node.args
            ):
                first = node.args[0]
                if isinstance(first, ast.Constant):
                    named.add(str(first.value))
                elif isinstance(first, ast.JoinedStr):
                    head = first.values[0]
                    assert isinstance(head, ast.Constant), ast.dump(first)
                    dynamic_groups.add(str(head.value).split(".")[0])
    assert named - set(EVENT_TYPES) == set()
    assert dynamic_groups <= groups
    assert {"ccp.metal_detector", "alarm.upload", "ship.outbound", "line.counters"} <= named


def test_the_contract_types_are_all_there() -> None:
    assert set(EVENT_TYPES) >= CONTRACT_TYPES
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))


# -- the schemas themselves ------------------------------------------------------------------------
@pytest.mark.parametrize("etype", EVENT_TYPES)
def test_schema_is_draft_2020_12_and_its_example_is_valid(etype: str) -> None:
    schema = schema_for(etype)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    spec = next(s for s in SPECS if s.type == etype)
    example = example_event(spec, 0)
    assert event_errors(example, strict=True) == []
    # every field of data is described
    for name, prop in schema["properties"]["data"]["properties"].items():
        assert prop.get("description"), f"{etype}: data.{name} has no description"


def test_the_bundle_validates_any_event_by_its_type() -> None:
    bundle = events_schema()
    Draft202012Validator.check_schema(bundle)
    validator = Draft202012Validator(bundle)
    for spec in SPECS:
        assert list(validator.iter_errors(example_event(spec, 0))) == []
    bad = example_event(SPECS[0], 0)
    bad["data"] = {**bad["data"], "verdict": "ok"}
    assert list(validator.iter_errors(bad))


def test_message_examples_are_valid() -> None:
    for msg in MESSAGES:
        Draft202012Validator.check_schema({"$schema": DRAFT, **msg.schema})
        validate_message(msg.schema, msg.example, strict_mode=True)


# -- bad payloads are refused ----------------------------------------------------------------------
def _event(etype: str) -> dict[str, Any]:
    return example_event(next(s for s in SPECS if s.type == etype), 0)


def test_a_missing_required_field_is_refused() -> None:
    ev = _event("ccp.net_content")
    del ev["data"]["verdict"]
    with pytest.raises(InvalidEvent) as err:
        validate_event(ev)
    assert err.value.errors == ["data: 'verdict' is a required property"]


def test_a_wrong_enum_is_refused() -> None:
    ev = _event("ccp.net_content")
    ev["data"]["verdict"] = "ok"
    assert event_errors(ev) == ["data.verdict: 'ok' is not one of ['pass', 'fail']"]


def test_a_conditionally_required_field_is_refused_when_missing() -> None:
    ev = _event("ccp.metal_detector")  # a verification record
    del ev["data"]["test_piece"]
    del ev["data"]["limits"]["max_size_mm"]
    errors = event_errors(ev)
    assert "data: 'test_piece' is a required property" in errors
    assert "data.limits: 'max_size_mm' is a required property" in errors
    ev = _event("alarm.device")
    del ev["data"]["tag"]
    assert event_errors(ev)  # neither previous, nor errors, nor tag and reason


def test_envelope_mistakes_are_refused_before_data() -> None:
    ev = _event("pack.bag")
    ev["seq"] = "1042"
    ev["ts"] = "2026-11-22 10:15:30"  # no T, no offset
    ev["enterprise"] = "1234"
    del ev["id"]
    errors = event_errors(ev)
    assert errors[0] == "(event): 'id' is a required property"
    assert any(e.startswith("seq: '1042' is not of type 'integer'") for e in errors)
    assert any(e.startswith("ts: ") for e in errors)
    assert any(e.startswith("enterprise: ") for e in errors)


def test_a_wrong_code_an_unknown_type_and_wrong_nesting_are_refused() -> None:
    ev = _event("pack.case")
    ev["data"]["children"] = ["8035AAAA0001", "not a code", "8035AAAA0001"]
    errors = event_errors(ev)
    assert any(e.startswith("data.children[1]: 'not a code' does not match") for e in errors)
    assert any("non-unique" in e for e in errors)
    ev = _event("pack.bag")
    ev["type"] = "pack.box"
    assert event_errors(ev)[0].startswith("type: no schema for event type 'pack.box'")
    ev = _event("ccp.iodine")
    ev["data"]["limits"] = {"lo": "18", "hi": None}
    assert event_errors(ev) == ["data.limits.lo: '18' is not of type 'number', 'null'"]


def test_unlisted_fields_are_allowed_unless_strict() -> None:
    ev = _event("pack.bag")
    ev["data"]["color"] = "blue"
    ev["extra"] = 1
    assert event_errors(ev) == []
    assert sorted(event_errors(ev, strict=True)) == [
        "(event): Additional properties are not allowed ('extra' was unexpected)",
    ]
    del ev["extra"]
    assert event_errors(ev, strict=True) == [
        "data: Additional properties are not allowed ('color' was unexpected)"
    ]


def test_device_must_be_null_where_no_single_device_reports() -> None:
    ev = _event("alarm.scan_rate")
    ev["device"] = "cw1"
    assert event_errors(ev) == ["device: 'cw1' is not of type 'null'"]
    ev = _event("ccp.sieve")
    ev["device"] = None
    assert event_errors(ev) == ["device: None is not of type 'string'"]


# -- the generated reference -----------------------------------------------------------------------
def test_events_doc_is_current() -> None:
    fresh = render_markdown()
    assert DOC.exists(), "run: saltgw schema --events --markdown > docs/events.md"
    assert DOC.read_text(encoding="utf-8") == fresh, (
        "docs/events.md is stale: run saltgw schema --events --markdown > docs/events.md"
    )


def test_events_doc_documents_every_type_and_topic() -> None:
    text = render_markdown()
    for etype in EVENT_TYPES:
        assert f"### `{etype}`" in text
        group, kind = etype.split(".")
        topic = f"/alarm/{kind}" if group == "alarm" else f"/event/{group}/{kind}"
        assert f"salt/v1/{{enterprise}}/{{site}}/{{line}}{topic}`" in text
    assert "| `data.limits.lo`" not in text and "| `limits.lo` | number or null | g | yes |" in text


def test_cli_prints_the_bundle_and_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    assert main(["schema", "--events"]) == 0
    assert json.loads(capsys.readouterr().out) == events_schema()
    assert main(["schema", "--events", "--markdown"]) == 0
    assert capsys.readouterr().out == render_markdown()


def test_compiled_check_refuses_a_string_where_only_null_is_allowed() -> None:
    """Found by tests/fuzz/test_ingest_fuzz.py: ``{"type": "null"}`` took any string."""
    from gateway.event_schemas.compiled import compile_schema

    errors: list[str] = []
    compile_schema({"type": "null"})("", (), errors)
    assert errors == ["(event): '' is not of type 'null'"]
    errors = []
    compile_schema({"type": ["string", "null"]})("", (), errors)
    assert errors == []
