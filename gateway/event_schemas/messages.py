"""The messages of the topic tree that are not events: the retained device state and line KPIs,
the answer to a MES command and to a record from MES / LIMS (gateway/runtime.py ``_on_state``,
gateway/kpi/calculator.py, gateway/commands.py, gateway/records/router.py). The gateway status
topic carries the bare text ``online`` / ``offline``."""

from __future__ import annotations

from gateway.event_schemas.envelope import ID_RE
from gateway.event_schemas.spec import (
    JSON,
    Field,
    array,
    enum,
    integer,
    nullable,
    number,
    obj,
    string,
)

__all__ = ["MESSAGES", "Message"]

TS = string(format="date-time")


class Message:
    """A message schema with its topic (relative to the line), retain flag and meaning."""

    def __init__(
        self, name: str, topic: str, retained: bool, meaning: str, schema: JSON, example: JSON
    ) -> None:
        self.name = name
        self.topic = topic
        self.retained = retained
        self.meaning = meaning
        self.schema = schema
        self.example = example


def _rate(what: str) -> Field:
    return Field(what, nullable(number(minimum=0)), f"`{what}`; null when its denominator is 0.")


COUNT_NAMES = (
    "produced",
    "frames",
    "read",
    "noread",
    "valid",
    "duplicate",
    "invalid",
    "garbage",
    "case_attempts",
    "case_rft",
    "pallet_attempts",
    "pallet_rft",
)
RATES = (
    _rate("scan_rate"),
    _rate("read_rate"),
    _rate("noread_rate"),
    _rate("duplicate_rate"),
    _rate("invalid_rate"),
    _rate("aggregation_rft"),
    Field(
        "counts",
        obj(*(Field(n, integer(minimum=0), f"Counter `{n}`.") for n in COUNT_NAMES)),
        "The raw counts the rates come from (docs/traceability.md, KPIs).",
    ),
)

STATE = Message(
    "state",
    "state/{device}",
    True,
    "A device's connection state, on every change (the last one stays retained).",
    obj(
        Field("device", string(pattern=ID_RE), "The device."),
        Field("state", enum("online", "offline", "fault"), "Its connection state."),
        Field("detail", nullable(string()), "The driver's reason (null when online)."),
        Field("ts", TS, "Since when."),
        Field("gateway", string(pattern=ID_RE), "The gateway reading it."),
        title="saltgw device state",
    ),
    {
        "device": "cw1",
        "state": "offline",
        "detail": "connection to 192.168.10.21:502 refused",
        "ts": "2026-11-22T10:15:30.123+08:00",
        "gateway": "gw-daiyue-1",
    },
)

KPI = Message(
    "kpi",
    "kpi",
    True,
    "The line's scan and packing KPIs (profile `scan_kpi`, every `publish_secs`): per scope "
    "`line` (today), `shift` and `batch` (the running one), and the live `window`.",
    obj(
        Field("ts", TS, "When computed."),
        Field("line", string(minLength=1), "The line."),
        Field("shift", string(minLength=1), "The current shift."),
        Field("batch", nullable(string(minLength=1)), "The running batch; null outside one."),
        Field("threshold", number(), "`scan_rate_threshold` of alarm.scan_rate."),
        Field(
            "window",
            obj(
                Field("secs", number(minimum=0), "Seconds covered.", "s"),
                Field("produced", integer(minimum=0), "Bags produced."),
                Field("valid", integer(minimum=0), "Codes commissioned."),
                _rate("scan_rate"),
            ),
            "The live window (last `window_secs`) that drives alarm.scan_rate.",
        ),
        Field(
            "scopes",
            obj(
                Field(
                    "line",
                    obj(Field("since", TS, "Local midnight."), *RATES),
                    "Today.",
                ),
                Field(
                    "shift",
                    obj(
                        Field("id", string(minLength=1), "The shift."),
                        Field("since", TS, "Its start."),
                        *RATES,
                    ),
                    "The current shift.",
                ),
                Field(
                    "batch",
                    obj(Field("id", string(minLength=1), "The batch."), *RATES),
                    "The running batch (absent outside a batch).",
                    required=False,
                ),
            ),
            "The KPIs per scope.",
        ),
        title="saltgw line KPIs",
    ),
    {
        "ts": "2026-11-22T10:15:30.000+08:00",
        "line": "L1",
        "shift": "A",
        "batch": None,
        "threshold": 0.98,
        "window": {"secs": 60.0, "produced": 120, "valid": 119, "scan_rate": 0.9917},
        "scopes": {
            "line": {
                "since": "2026-11-22T00:00:00+08:00",
                "scan_rate": 0.9917,
                "read_rate": 0.9921,
                "noread_rate": 0.0079,
                "duplicate_rate": 0.0,
                "invalid_rate": 0.0,
                "aggregation_rft": 1.0,
                "counts": {
                    "produced": 120,
                    "frames": 127,
                    "read": 119,
                    "noread": 1,
                    "valid": 119,
                    "duplicate": 0,
                    "invalid": 0,
                    "garbage": 0,
                    "case_attempts": 6,
                    "case_rft": 6,
                    "pallet_attempts": 0,
                    "pallet_rft": 0,
                },
            },
            "shift": {
                "id": "A",
                "since": "2026-11-22T08:00:00+08:00",
                "scan_rate": 0.9917,
                "read_rate": 0.9921,
                "noread_rate": 0.0079,
                "duplicate_rate": 0.0,
                "invalid_rate": 0.0,
                "aggregation_rft": 1.0,
                "counts": {
                    "produced": 120,
                    "frames": 127,
                    "read": 119,
                    "noread": 1,
                    "valid": 119,
                    "duplicate": 0,
                    "invalid": 0,
                    "garbage": 0,
                    "case_attempts": 6,
                    "case_rft": 6,
                    "pallet_attempts": 0,
                    "pallet_rft": 0,
                },
            },
        },
    },
)

RESPONSE = Message(
    "response",
    "cmd/{device}/response",
    False,
    "The gateway's answer to a MES command on `…/cmd/{device}` (docs/commands.md): exactly one "
    "per command.",
    obj(
        Field("id", nullable(string()), "The command's `id`; null when it had none."),
        Field(
            "status",
            enum("accepted", "rejected", "failed"),
            "accepted: every write acknowledged and the method (if any) answered Good; "
            "rejected: refused by the gateway or not delivered; failed: the method answered "
            "a status other than Good, or no result came in time.",
        ),
        Field("reason", nullable(string()), "Why it was rejected or failed; null when accepted."),
        Field("command", nullable(string()), "The command's name; null when unknown."),
        Field("device", string(minLength=1), "The device of the command topic."),
        Field("ts", TS, "When answered."),
        Field(
            "method",
            obj(
                Field("status", string(minLength=1), "The method's StatusCode name (Good, …)."),
                Field("code", integer(minimum=0), "The StatusCode's 32-bit value."),
                Field(
                    "outputs",
                    array(nullable({"type": ["string", "number", "boolean"]})),
                    "The output arguments, in the method's order.",
                ),
                Field(
                    "input_errors",
                    array(nullable(string())),
                    "Per input argument, the device's reason when it refused one (null: fine).",
                    required=False,
                ),
            ),
            "Only when the command called a device method (docs/commands.md, Methods): the "
            "device's answer.",
            required=False,
        ),
        title="saltgw command response",
    ),
    {
        "id": "mes-7f3a",
        "status": "accepted",
        "reason": None,
        "command": "start_batch",
        "device": "plc1",
        "ts": "2026-11-22T10:15:30.123+08:00",
    },
)

RECORD_RESPONSE = Message(
    "record_response",
    "record/{kind}/response",
    False,
    "The gateway's answer to a record from MES or LIMS on `…/record/{kind}` (docs/records.md): "
    "exactly one per message, `accepted` only once the journal committed the record's event.",
    obj(
        Field("id", nullable(string()), "The message's `id`; null when it had none."),
        Field(
            "status",
            enum("accepted", "rejected"),
            "accepted: journaled (or already journaled: `duplicate`); rejected: not journaled, "
            "`reason` says why.",
        ),
        Field(
            "reason",
            nullable(string()),
            "Why it was rejected (the field and what is wrong, at most five errors; "
            "`not authorised` without details); null when accepted.",
        ),
        Field(
            "record",
            string(),
            "The record kind of the topic (`material_receipt`, `inspection`, `release`, "
            "`nonconforming`; an unknown kind is echoed, cut to 64 characters, and rejected).",
        ),
        Field(
            "record_id",
            nullable(string(minLength=1)),
            "The record id journaled (the record's `record_id`, else the message `id`); null "
            "when rejected.",
        ),
        Field(
            "seq",
            nullable(integer(minimum=1)),
            "The journal seq of the record's event (the first one for a duplicate); null when "
            "rejected.",
        ),
        Field(
            "duplicate",
            {"type": "boolean"},
            "true: a record of this kind and id was already journaled; not journaled again.",
        ),
        Field("ts", TS, "When answered."),
        title="saltgw record response",
    ),
    {
        "id": "lims-msg-1",
        "status": "accepted",
        "reason": None,
        "record": "inspection",
        "record_id": "LIMS-R-1122-01",
        "seq": 812,
        "duplicate": False,
        "ts": "2026-11-22T15:00:00.120+08:00",
    },
)

MESSAGES = (STATE, KPI, RESPONSE, RECORD_RESPONSE)
