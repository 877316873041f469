"""``alarm.*``: on ``…/{line}/alarm/{kind}``, the same envelope as every event. Every alarm's
``data`` has ``detail``, a sentence for the operator; the other fields say what, where, how bad."""

from __future__ import annotations

from gateway.event_schemas.envelope import TS_RE
from gateway.event_schemas.pack import code
from gateway.event_schemas.spec import (
    JSON,
    EventSpec,
    Field,
    array,
    const,
    enum,
    integer,
    nullable,
    number,
    obj,
    string,
)

__all__ = ["AGGREGATION_REASONS", "ALARM_SPECS", "CODE_ERRORS"]

CCP_KINDS = ("net_content", "metal_detector", "magnet_rod", "sieve", "iodine")
SCAN_DIRECTIONS = ("outbound", "inbound", "recall")

#: ``alarm.invalid_code`` ``error`` (gateway/codes/parse.py; docs/traceability.md).
CODE_ERRORS = (
    "empty",
    "binary",
    "length",
    "no_code",
    "resolver",
    "enterprise_format",
    "enterprise_unknown",
    "enterprise_foreign",
    "charset",
)

#: ``alarm.aggregation`` ``reason``: the packing profiles' own, then the state machine's
#: refusals (gateway/aggregation/machine.py).
AGGREGATION_REASONS = (
    "short_case",
    "short_pallet",
    "label_noread",
    "orphaned",
    "resync",
    "empty",
    "parent_in_use",
    "duplicate_child",
    "not_commissioned",
    "no_order",
    "wrong_level",
    "rejected_child",
    "open_child",
    "bound_elsewhere",
    "mixed_batch",
    "mixed_sku",
    "over_ratio",
    "not_open",
    "no_reason",
    "parent_bound",
    "unknown",
)


def detail() -> Field:
    return Field("detail", string(minLength=1), "What happened and what to do, for the operator.")


def _codes() -> JSON:
    return array(code(), uniqueItems=True)


CCP = EventSpec(
    type="alarm.ccp",
    title="A critical control point failed, or a periodic check was missed.",
    meaning="Raised with every failed `ccp.*` record (what failed, against which limit, and "
    "what to hold: the product since `last_pass`), and once per missed interval when a "
    "periodic check (test-piece verification, magnet rod or sieve inspection) was not done in "
    "time: then `value` is the minutes since the last check, `unit` `min`, `limits.hi` the "
    "interval and `missed` 1, 2, ….",
    records="QB/T 5279-2018 7.2 table 2 row 4; 7.6 (预警信息)",
    source="the CCP profiles (gateway/profiles/records.py `ccp_alarm`, checkweigher.py)",
    fields=(
        Field("ccp", enum(*CCP_KINDS), "Which CCP: the `ccp.{kind}` of the failed record."),
        Field(
            "check",
            enum(
                "detection",
                "verification",
                "inspection",
                "sensor",
                "dosing",
                "analyser",
                "weighing",
            ),
            "Which check failed or was missed (the record's `check`, or the iodine record's "
            "`source`; `weighing` for `net_content`).",
        ),
        Field(
            "value",
            {"type": ["number", "boolean"]},
            "The failed record's value, or the minutes since the last check (missed check).",
        ),
        Field("unit", nullable(string()), "Unit of `value` (`min` for a missed check)."),
        Field(
            "limits",
            obj(
                Field("lo", nullable(number()), "Lowest acceptable value.", required=False),
                Field("hi", nullable(number()), "Highest acceptable value.", required=False),
                Field(
                    "expected",
                    const(True),
                    "The value a passing boolean check has.",
                    required=False,
                ),
                Field(
                    "max_size_mm",
                    number(exclusiveMinimum=0),
                    "Metal detector verification: the largest test piece that counts.",
                    "mm",
                    required=False,
                ),
                anyOf=[{"required": ["lo", "hi"]}, {"required": ["expected"]}],
            ),
            "The limits: `{lo, hi}` for a value, `{expected: true}` for a boolean check.",
        ),
        Field("verdict", const("fail"), "Always `fail`."),
        detail(),
        Field(
            "last_pass",
            nullable(string(format="date-time")),
            "When this CCP last passed the failed check; null: not since the gateway started "
            "watching. The product packed since is what to hold.",
            required=False,
        ),
        Field(
            "missed",
            integer(minimum=1),
            "Missed check: the number of the missed interval (1, 2, …).",
            required=False,
        ),
        Field("detection", integer(minimum=0), "metal_detector: the detection.", required=False),
        Field(
            "test_piece",
            enum("fe", "non_fe", "stainless"),
            "metal_detector: the test piece that failed.",
            required=False,
        ),
        Field(
            "size_mm",
            number(exclusiveMinimum=0),
            "metal_detector: size of the piece used.",
            "mm",
            required=False,
        ),
        Field(
            "verification",
            integer(minimum=0),
            "metal_detector: the verification counter.",
            required=False,
        ),
        Field(
            "count",
            integer(minimum=0),
            "net_content: the checkweigher's weighing counter of the failed weighing.",
            required=False,
        ),
        Field(
            "inspection",
            integer(minimum=0),
            "magnet_rod, sieve: the inspection counter.",
            required=False,
        ),
        Field("source", enum("analyser", "dosing"), "iodine: the record's source.", required=False),
        Field(
            "target_mg_kg",
            enum(20, 25, 30),
            "iodine: the selected level.",
            "mg/kg",
            required=False,
        ),
    ),
    notes="`limits` has `lo` and `hi` (a numeric check, a missed check), or `expected` (a "
    "boolean check). The checkweigher's alarm has `check: weighing` and the weighing `count`.",
    example={
        "device": "md1",
        "batch": "20261122-L1-01",
        "data": {
            "ccp": "metal_detector",
            "check": "verification",
            "value": False,
            "unit": None,
            "limits": {"expected": True, "max_size_mm": 2.0},
            "verdict": "fail",
            "detail": "metal detector md1, verification 5: non-Fe test piece 2 mm not detected; "
            "hold and re-inspect the product packed since the last passed verification "
            "(2026-11-22T10:01:00+08:00)",
            "test_piece": "non_fe",
            "size_mm": 2.0,
            "verification": 5,
            "last_pass": "2026-11-22T10:01:00.000+08:00",
        },
    },
)

DEVICE = EventSpec(
    type="alarm.device",
    title="A device went offline or into fault, came back, or gave values the gateway cannot use.",
    meaning="Three sources, told apart by their fields: the device's connection (`state` "
    "`online` / `offline` / `fault` with `previous`, on every change after start; the retained "
    "`…/state/{device}` says the same); the driver's unreadable tags (`errors`, when the set of "
    "bad tags changes, `values_ok` when it is empty again); a profile's check of one tag "
    "(`tag`, `reason`: a value missing, NaN, negative or out of range is `bad_value`, one that "
    "stopped changing or is too old is `stale`; `values_ok` when it is good again; a record "
    "counter that went back is `counter_reset`). A bad value never gets a verdict.",
    records="QB/T 5279-2018 10.2.1 (automated collection), 7.6 (预警信息)",
    source="the runtime (gateway/runtime.py, gateway/supervisor.py) and every profile "
    "(gateway/profiles/records.py `device_alarm`, watch.py)",
    fields=(
        Field(
            "state",
            enum("online", "offline", "fault", "bad_value", "stale", "values_ok", "counter_reset"),
            "online / offline / fault: the connection; bad_value / stale / values_ok: the "
            "values; counter_reset: a device's record counter went back (a reset).",
        ),
        Field(
            "detail",
            nullable(string()),
            "What happened, for the operator (the driver's error for a connection state; null "
            "when it gave none).",
        ),
        Field(
            "previous",
            enum("online", "offline", "fault", None),
            "Connection states: the state before (the one the previous alarm said when "
            "changes were rate-limited in between); null before the first connection.",
            required=False,
            when={"state": ("online", "offline", "fault")},
        ),
        Field(
            "suppressed",
            integer(minimum=1),
            "Connection states: changes since the previous alarm that raised no alarm (a "
            "flapping device: at most 6 alarms at once, then one per 30 s; docs/faults.md).",
            required=False,
        ),
        Field(
            "errors",
            {"type": "object", "additionalProperties": string()},
            "The driver's unreadable tags now: tag → reason (`{}` with `values_ok`).",
            required=False,
        ),
        Field("tag", string(minLength=1), "The tag a profile could not use.", required=False),
        Field(
            "reason",
            string(),
            "Why (the driver's reason for a missing value, `not a number (…)`, `unchanged`, …; "
            "`ok` with `values_ok`).",
            required=False,
        ),
        Field(
            "count",
            integer(minimum=0),
            "checkweigher: the weighing whose weight was unreadable.",
            required=False,
        ),
        Field(
            "from",
            integer(minimum=0),
            "counter_reset: the last counter value seen before it went back.",
            required=False,
            when={"state": "counter_reset"},
        ),
        Field(
            "to",
            integer(minimum=0),
            "counter_reset: the counter value now; counting resumes from it.",
            required=False,
            when={"state": "counter_reset"},
        ),
        Field(
            "missed",
            integer(minimum=0),
            "counter_reset: records made since the reset and never seen (1 … `to` − 1); the "
            "record of `to` (checkweigher: its `ccp.net_content`) carries the same `missed`, "
            "so count them once. Records after `from` but before the reset are unknowable.",
            required=False,
            when={"state": "counter_reset"},
        ),
        Field(
            "verification",
            nullable(integer(minimum=0)),
            "metal_detector: the verification whose result was unreadable.",
            required=False,
        ),
        Field(
            "inspection",
            integer(minimum=0),
            "magnet_rod, sieve: the inspection whose result was unreadable.",
            required=False,
        ),
        Field(
            "sample",
            nullable(integer(minimum=0)),
            "iodine (analyser): the sample whose result was unreadable.",
            required=False,
        ),
    ),
    extra={
        "anyOf": [
            {"required": ["previous"]},
            {"required": ["errors"]},
            {"required": ["tag", "reason"]},
        ]
    },
    notes="Every `alarm.device` has `previous` (a connection state), `errors` (the driver's "
    "unreadable tags) or `tag` and `reason` (a profile's check).",
    example={
        "device": "io1",
        "batch": "20261122-L1-01",
        "data": {
            "state": "stale",
            "tag": "iodine_mg_kg",
            "reason": "unchanged",
            "detail": "iodine result 26.2 mg/kg unchanged over 3 new samples (now sample 108): "
            "the analyser looks hung; no verdict",
        },
    },
)

DUPLICATE = EventSpec(
    type="alarm.duplicate_code",
    title="A code seen again where it must be seen once: a copied or reprinted mark.",
    meaning="At the bag, case or pallet scanner: a code already seen at that stage (`count` = "
    "sightings so far; the second and later are refused and their bag leaves an empty slot). "
    "At an outbound, inbound or recall scanner: bags under the scanned code were already "
    "registered in that direction (`bags` of them, e.g. on `earlier_order`); the scan is "
    "registered for the others.",
    records="QB/T 5279-2018 6.1 (one unique code per product), 8.8 (marks not copied)",
    source="profiles `bag_scanner`, `case_packer`, `pallet_builder`, `outbound_scanner`, "
    "`inbound_scanner`, `recall_scanner` (gateway/profiles/scanning.py)",
    fields=(
        Field(
            "stage",
            enum("bag", "case", "pallet", *SCAN_DIRECTIONS),
            "Where: the scanner's stage, or the scanning direction.",
        ),
        Field("code", code(), "The code (the scanned one, for a shipping scan)."),
        Field(
            "count",
            integer(minimum=1),
            "Packing stages: sightings of the code at this stage, this one included (1 when "
            "the code is new at this stage but the line knows it at another level, e.g. a case "
            "label read by the bag scanner). Shipping scans: bags already registered + 1.",
        ),
        Field(
            "first_seen",
            string(pattern=f"^$|{TS_RE}"),
            'When the code was first seen at this stage (RFC 3339); `""` for shipping scans '
            "(see `earlier_order`).",
        ),
        Field(
            "first_device",
            nullable(string()),
            "The device that saw it first; null for shipping scans.",
        ),
        detail(),
        Field(
            "bags",
            integer(minimum=1),
            "Shipping scans: bags under the code already registered in this direction.",
            required=False,
            when={"stage": SCAN_DIRECTIONS},
        ),
        Field(
            "earlier_order",
            nullable(string()),
            "Shipping scans: the order (or recall) one of them was registered on.",
            required=False,
            when={"stage": SCAN_DIRECTIONS},
        ),
    ),
    example={
        "device": "scan1",
        "batch": "20261122-L1-01",
        "data": {
            "stage": "bag",
            "code": "8035K7M2Q9XW4T",
            "count": 2,
            "first_seen": "2026-11-22T10:00:00.500+08:00",
            "first_device": "scan1",
            "detail": "code 8035K7M2Q9XW4T seen 2 times at bag, first at "
            "2026-11-22T10:00:00.500+08:00 (a copied or reprinted mark, QB/T 5279 8.8)",
        },
    },
)

INVALID = EventSpec(
    type="alarm.invalid_code",
    title="A scanner read something that is not a valid traceability code.",
    meaning="The payload is not a code of this enterprise by QB/T 5279-2018 6.2, 8.2 and Annex "
    "A (`error` says which rule; docs/traceability.md). At the bag scanner the bag leaves an "
    "empty slot; at a label scanner the pending bags (cases) are left unbound.",
    records="QB/T 5279-2018 6.2 (编码规则), 8.2, Annex A",
    source="every scanner profile (gateway/profiles/scanning.py, gateway/codes/)",
    fields=(
        Field(
            "stage",
            enum("bag", "reject", "case", "pallet", *SCAN_DIRECTIONS),
            "Which scanner.",
        ),
        Field("raw", string(), "What was read."),
        Field(
            "code",
            nullable(string()),
            "The code found in it (also when invalid); null when none.",
        ),
        Field("error", enum(*CODE_ERRORS), "Which rule it broke (a stable key)."),
        Field("reason", string(minLength=1), "The rule, for people."),
        detail(),
    ),
    example={
        "device": "scan1",
        "batch": "20261122-L1-01",
        "data": {
            "stage": "bag",
            "raw": "8063ABCDEFGH12",
            "code": "8063ABCDEFGH12",
            "error": "enterprise_foreign",
            "reason": "enterprise code 8063 is not this enterprise's (8035)",
            "detail": "invalid code at bag: enterprise code 8063 is not this enterprise's (8035)",
        },
    },
)

REFUSAL = obj(
    Field("reason", enum(*AGGREGATION_REASONS[5:]), "The refusal's reason."),
    Field("code", nullable(string()), "The code it is about; null: the binding as a whole."),
    Field("detail", string(minLength=1), "The refusal, for people."),
)

AGGREGATION = EventSpec(
    type="alarm.aggregation",
    title="Bags (cases) that could not be bound right.",
    meaning="The binding state machine refuses rather than binds wrongly, and says why "
    "(docs/traceability.md): a short case or pallet bound open until an operator closes it or "
    "reworks it (`short_case`, `short_pallet`), a label not read (`label_noread`: the pending "
    "bags are left unbound, to rework), slots dropped after a lost label (`orphaned`), an "
    "operator's `resync`, a refused binding (`reasons` lists every refusal), a refused operator "
    "action (`not_open`, `no_reason`, `parent_bound`, `unknown`), or a code leaving the plant "
    "that this line never commissioned (`not_commissioned`, level `unknown`), or an outbound "
    "scan before any order or customer was known (`no_order`: refused, nothing registered).",
    records="QB/T 5279-2018 5.1 (最小包装与外包装建立关联关系), 8.4; the 2023 training speech "
    "part 三 (inaccurate binding)",
    source="profiles `case_packer`, `pallet_builder`, `outbound_scanner`",
    fields=(
        Field("reason", enum(*AGGREGATION_REASONS), "What went wrong (the first refusal's)."),
        Field(
            "level",
            enum("case", "pallet", "unknown"),
            "The level being bound; `unknown` for an outbound code never commissioned.",
        ),
        Field(
            "parent",
            nullable(string(minLength=1)),
            "The case or pallet code; null when there is none (label not read, slots dropped).",
        ),
        Field(
            "children",
            _codes(),
            "The children concerned (bound into an open case, left unbound, dropped, refused).",
        ),
        detail(),
        Field(
            "reasons",
            array(REFUSAL, minItems=1),
            "A refused binding: every refusal.",
            required=False,
        ),
        Field(
            "expected",
            integer(minimum=1),
            "short_case / short_pallet: the pack ratio.",
            required=False,
            when={"reason": ("short_case", "short_pallet")},
        ),
        Field(
            "raw",
            nullable(string()),
            "label_noread: the label read (invalid or duplicate), or null when none was.",
            required=False,
            when={"reason": "label_noread"},
        ),
    ),
    example={
        "device": "case1",
        "batch": "20261122-L1-01",
        "data": {
            "reason": "short_case",
            "level": "case",
            "parent": "8035CASE000002",
            "children": ["8035K7M2Q9XW4T", "8035P3D8L1VZ6N"],
            "detail": "case 8035CASE000002 holds 2 of 3 bags (1 not identified, 0 not there): "
            "close it as partial with a reason, or rework it",
            "expected": 3,
        },
    },
)

SCAN_RATE = EventSpec(
    type="alarm.scan_rate",
    title="The line's live scan rate fell under the threshold, or is back over it.",
    meaning="The `scan_kpi` profile samples the last `window_secs` once a second: codes "
    "commissioned / bags produced. Under `scan_rate_threshold` (after at least `min_bags` "
    "bags): one alarm with `state: low`; back at or over it: one with `state: recovered`. The "
    "retained `…/kpi` message has the figures per line, shift and batch.",
    records="the 2023 training speech part 三 (low and uneven scan rates); QB/T 5279-2018 10.2.2",
    source="profile `scan_kpi` (gateway/profiles/scan_kpi.py, gateway/kpi/calculator.py)",
    device="null",
    fields=(
        Field("state", enum("low", "recovered"), "Under the threshold, or back over it."),
        Field("scan_rate", number(minimum=0), "Codes commissioned / bags produced in the window."),
        Field("threshold", number(exclusiveMinimum=0, maximum=1), "The configured threshold."),
        Field("window_secs", number(minimum=0), "The window the rate covers.", "s"),
        Field("produced", integer(minimum=0), "Bags produced in the window."),
        Field("valid", integer(minimum=0), "Codes commissioned in the window."),
        detail(),
    ),
    example={
        "device": None,
        "batch": "20261122-L1-01",
        "data": {
            "state": "low",
            "scan_rate": 0.9,
            "threshold": 0.98,
            "window_secs": 60.0,
            "produced": 120,
            "valid": 108,
            "detail": "scan rate 90.0% over the last 60 s is under 98.0% (108 codes for 120 bags)",
        },
    },
)

UPLOAD = EventSpec(
    type="alarm.upload",
    title="A batch's records are not (or are again fully) acknowledged by the platform.",
    meaning="The bridge reconciles every batch: one that stays incomplete "
    "`reconcile.incomplete_alarm_secs` after its last event raises `state: incomplete` once, "
    "with the counts; when it completes, `state: complete`. Under `saltgw run` it goes through "
    "the gateway's journal like any other alarm. The batch it is about is `data.batch`, and "
    "the envelope's `batch` is the same batch (not the one running on the line now).",
    records="QB/T 5279-2018 6.3, 11.2 (uploaded in time); the 2023 training speech part 三 "
    "(missing or incomplete uploads)",
    source="the bridge (gateway/bridge/reconcile.py, service.py)",
    device="null",
    fields=(
        Field("state", enum("incomplete", "complete"), "Incomplete, or complete again."),
        Field("batch", string(minLength=1), "The batch reconciled."),
        Field("commissioned", integer(minimum=0), "Codes commissioned in the batch."),
        Field("uploaded", integer(minimum=0), "Of them, delivered (sent or acknowledged)."),
        Field("acknowledged", integer(minimum=0), "Of them, acknowledged by the platform."),
        Field("quarantined", integer(minimum=0), "Of them, in a quarantined document."),
        Field(
            "other_unacked",
            integer(minimum=0),
            "Packing, CCP and outbound records of the batch not acknowledged.",
        ),
        Field(
            "missing_seq",
            integer(minimum=0),
            "Events of the gateway within the batch's seq range the bridge never received "
            "(alarm.seq_gap); the batch is incomplete while any is missing.",
        ),
        detail(),
    ),
    example={
        "device": None,
        "batch": None,
        "data": {
            "state": "incomplete",
            "batch": "20261122-L1-01",
            "commissioned": 412,
            "uploaded": 412,
            "acknowledged": 400,
            "quarantined": 0,
            "other_unacked": 3,
            "missing_seq": 0,
            "detail": "batch 20261122-L1-01: 400 of 412 codes acknowledged by the platform, 3 "
            "other records not acknowledged",
        },
    },
)

SEQ_GAP = EventSpec(
    type="alarm.seq_gap",
    title="Events of a gateway did not reach the bridge (or did, after all).",
    meaning="The bridge tracks every gateway's `seq` (per gateway, without gaps: the envelope). "
    "A `seq` missing while later ones arrived, and not received within "
    "`bridge.seq_gap_grace_secs` (out-of-order redelivery after a reconnect is normal), raises "
    "`state: missing` once, with the gateway and the range, and the bridge asks the gateway to "
    "publish them again (`…/gateway/{id}/replay`, docs/architecture.md). When every `seq` of "
    "the range has arrived, `state: filled` clears it. Events past the gateway's delivered "
    "window (`journal.keep_delivered_*`) or dropped by `journal.when_full: drop_oldest` cannot "
    "come again: the gap stays alarmed, and reconciliation shows the batches it touches "
    "incomplete. Tracking starts at the first `seq` the bridge stores from a gateway.",
    records="QB/T 5279-2018 4.4 (records complete), 11.2 (uploaded in time); the 2023 training "
    "speech part 三 (incomplete uploads)",
    source="the bridge (gateway/bridge/gaps.py, ingest.py)",
    device="null",
    fields=(
        Field("state", enum("missing", "filled"), "Missing, or received after all."),
        Field("gateway", string(minLength=1), "The gateway whose events are missing."),
        Field("from", integer(minimum=1), "First `seq` of the gap."),
        Field("to", integer(minimum=1), "Last `seq` of the gap."),
        Field("missing", integer(minimum=0), "Of them, not received now (0 when filled)."),
        detail(),
    ),
    example={
        "device": None,
        "batch": None,
        "data": {
            "state": "missing",
            "gateway": "gw-daiyue-1",
            "from": 1043,
            "to": 1050,
            "missing": 8,
            "detail": "gateway gw-daiyue-1: seq 1043..1050 not received (8 missing); replay asked",
        },
    },
)

ALARM_SPECS = (CCP, DEVICE, DUPLICATE, INVALID, AGGREGATION, SCAN_RATE, UPLOAD, SEQ_GAP)
