"""``batch.*``, ``line.*`` and ``feed.material``: what the line PLC says (gateway/profiles/
line_plc.py, material_feed.py; docs/line-events.md)."""

from __future__ import annotations

from gateway.event_schemas.spec import (
    JSON,
    EventSpec,
    Field,
    boolean,
    enum,
    integer,
    nullable,
    number,
    string,
)

__all__ = ["LINE_SPECS"]


def label() -> JSON:
    """A value read from a PLC tag and passed on as it is: text, or a number for a numeric tag."""
    return {"type": ["string", "number", "null"]}


PRODUCT = Field(
    "product", label(), "The product of the batch (the PLC's product tag); null when not bound."
)
LINE = Field(
    "line",
    nullable(string(minLength=1)),
    "The line's id (the profile's `line`, else the gateway's line id).",
)
SHIFT = Field("shift", label(), "The shift (班组) producing the batch; null when not bound.")
BATCH_NOTES = (
    "The line_plc profile sends exactly these fields. The bridge (docs/bridge.md) also reads "
    "`production_date` (`YYYY-MM-DD`; default: the date of `ts`), `shelf_life_days` (a positive "
    "integer), `inspection` (the batch's inspection result, table 6 row 23) and "
    "`person_in_charge` (the batch's 负责人, table 2 row 2: text) when another producer, e.g. "
    "the MES, adds them; it uploads them, and `shift`, with the batch."
)

START = EventSpec(
    type="batch.start",
    title="A batch started on the line.",
    meaning="The PLC's batch number became a non-empty value other than the open batch's "
    "(after the previous batch's `batch.end`, reason `replaced`). The first reading after the "
    "gateway starts is a baseline: a batch already running gives `batch.start` with "
    "`resumed: true`. From this event to its `batch.end` every event of the line carries the "
    "batch in the envelope.",
    records="QB/T 5279-2018 10.2.4 (批次为主线), 5.1 (生产线、班组、批次管理), table 2 row 2",
    source="profile `line_plc` (gateway/profiles/line_plc.py)",
    batch="required",
    fields=(
        Field("batch", string(minLength=1), "The batch number (the envelope's `batch` too)."),
        PRODUCT,
        LINE,
        SHIFT,
        Field(
            "resumed",
            boolean(),
            "The batch was already running when the gateway started (a resumption, not a new "
            "batch).",
        ),
    ),
    notes=BATCH_NOTES,
    example={
        "device": "plc1",
        "batch": "20261122-L1-01",
        "data": {
            "batch": "20261122-L1-01",
            "product": "加碘精制盐 400g",
            "line": "L1",
            "shift": "A",
            "resumed": False,
        },
    },
)

END = EventSpec(
    type="batch.end",
    title="A batch ended on the line.",
    meaning="The PLC's batch number was cleared (`reason: cleared`) or replaced by another "
    "(`replaced`, followed by the new batch's `batch.start`). `bags` and `cases` are the sums "
    "of the PLC counters' increments while the batch was open (a counter reset or a uint32 "
    "wrap does not corrupt them).",
    records="QB/T 5279-2018 10.2.4, 5.1",
    source="profile `line_plc` (gateway/profiles/line_plc.py)",
    batch="required",
    fields=(
        Field("batch", string(minLength=1), "The batch number (the envelope's `batch` too)."),
        PRODUCT,
        LINE,
        SHIFT,
        Field(
            "bags",
            nullable(integer(minimum=0)),
            "Bags filled in the batch; null when the bag counter is not bound.",
        ),
        Field(
            "cases",
            nullable(integer(minimum=0)),
            "Cases packed in the batch; null when the case counter is not bound.",
        ),
        Field(
            "duration_s",
            number(minimum=0),
            "From the reading that started the batch to the one that ended it.",
            "s",
        ),
        Field(
            "started",
            string(format="date-time"),
            "When the batch started (RFC 3339, the `ts` of its `batch.start`).",
        ),
        Field("reason", enum("cleared", "replaced"), "Why it ended."),
    ),
    notes=BATCH_NOTES,
    example={
        "device": "plc1",
        "batch": "20261122-L1-01",
        "data": {
            "batch": "20261122-L1-01",
            "product": "加碘精制盐 400g",
            "line": "L1",
            "shift": "A",
            "bags": 412,
            "cases": 20,
            "duration_s": 181.5,
            "started": "2026-11-22T10:12:29.000+08:00",
            "reason": "cleared",
        },
    },
)

STATE = EventSpec(
    type="line.state",
    title="The line's PackML state or unit mode changed.",
    meaning="On every change of the PLC's PackML state (PackTags `StateCurrent`, OPC 30050) or "
    "unit mode, and once when the gateway first sees them. A contract extension "
    "(docs/line-events.md): MES and OEE tools need it to account for a batch.",
    records="contract extension; QB/T 5279-2018 10.2.1 (automated collection), 5.1 (生产管理)",
    source="profile `line_plc` (gateway/profiles/line_plc.py, gateway/packml.py)",
    fields=(
        Field(
            "state",
            nullable(integer()),
            "PackML state number: 1 Clearing, 2 Stopped, 3 Starting, 4 Idle, 5 Suspended, "
            "6 Execute, 7 Stopping, 8 Aborting, 9 Aborted, 10 Holding, 11 Held, 12 Unholding, "
            "13 Suspending, 14 Unsuspending, 15 Resetting, 16 Completing, 17 Complete; null when "
            "the state tag is not bound.",
        ),
        Field(
            "state_name",
            nullable(string()),
            "The state's name (`Execute`, …; `State n` for a number PackML does not define).",
        ),
        Field(
            "mode",
            nullable(integer()),
            "PackML unit mode: 1 Production, 2 Maintenance, 3 Manual, others the machine "
            "builder's; null when not bound.",
        ),
        Field("mode_name", nullable(string()), "The mode's name (`Production`, …, `Mode n`)."),
        Field(
            "previous",
            nullable(integer()),
            "The state before this change; null on the first event after the gateway started.",
        ),
        Field("previous_name", nullable(string()), "The previous state's name."),
    ),
    example={
        "device": "plc1",
        "batch": "20261122-L1-01",
        "data": {
            "state": 11,
            "state_name": "Held",
            "mode": 1,
            "mode_name": "Production",
            "previous": 6,
            "previous_name": "Execute",
        },
    },
)

COUNTERS = EventSpec(
    type="line.counters",
    title="The line's bag and case counters.",
    meaning="At most every `counters_every_secs` (10 s), and only when a counter moved: a "
    "stopped line sends none. A contract extension (docs/line-events.md).",
    records="contract extension; QB/T 5279-2018 5.1 (生产管理)",
    source="profile `line_plc` (gateway/profiles/line_plc.py)",
    fields=(
        Field(
            "bags",
            nullable(integer(minimum=0)),
            "The PLC's bag counter now; null when not bound.",
        ),
        Field(
            "cases",
            nullable(integer(minimum=0)),
            "The PLC's case counter now; null when not bound.",
        ),
        Field("batch", nullable(string(minLength=1)), "The open batch; null outside a batch."),
        Field(
            "batch_bags",
            nullable(integer(minimum=0)),
            "Bags of the open batch so far; null outside a batch.",
        ),
        Field(
            "batch_cases",
            nullable(integer(minimum=0)),
            "Cases of the open batch so far; null outside a batch.",
        ),
        Field(
            "speed",
            nullable(number()),
            "The PLC's own line speed figure; null when not bound.",
            "bags/min",
        ),
        Field(
            "rate",
            nullable(number(minimum=0)),
            "Bags per minute the gateway counted over `interval_s`; null without a bag counter.",
            "bags/min",
        ),
        Field("interval_s", number(minimum=0), "The interval `rate` covers.", "s"),
    ),
    example={
        "device": "plc1",
        "batch": "20261122-L1-01",
        "data": {
            "bags": 18240,
            "cases": 912,
            "batch": "20261122-L1-01",
            "batch_bags": 412,
            "batch_cases": 20,
            "speed": 152.4,
            "rate": 150.0,
            "interval_s": 10.0,
        },
    },
)

FEED = EventSpec(
    type="feed.material",
    title="A material fed into the line (投料).",
    meaning="One record per change of the PLC's feeding counter, with the last values of its "
    "other tags (an OPC UA subscription reports only what changed). A feeding without a "
    "material name or a sane quantity gives `alarm.device` naming the tag instead.",
    records="QB/T 5279-2018 7.2 table 2 row 1 (投料信息), 10.2.3 (投料), 5.1 (投料记录)",
    source="profile `material_feed` (gateway/profiles/material_feed.py)",
    fields=(
        Field("material", string(minLength=1), "Name (and specification) of the material fed."),
        Field(
            "lot",
            nullable(string(minLength=1)),
            "Lot (batch) number of the material; null when the PLC gave none.",
        ),
        Field(
            "quantity",
            number(exclusiveMinimum=0),
            "Quantity fed, in `unit` (at most the profile's `max_quantity`).",
        ),
        Field("unit", string(minLength=1), "Unit of `quantity` (the profile's `unit`, `kg`)."),
        Field("point", label(), "Feeding point (hopper, doser); null when not bound."),
        Field("operator", label(), "Who fed it; null when not bound."),
        Field("count", integer(minimum=1), "The PLC's feeding counter for this feeding."),
    ),
    example={
        "device": "plc1",
        "batch": "20261122-L1-01",
        "data": {
            "material": "碘酸钾 (KIO3)",
            "lot": "KI-20261122-002",
            "quantity": 0.8,
            "unit": "kg",
            "point": "iodine-doser",
            "operator": "李娜",
            "count": 4,
        },
    },
)

LINE_SPECS = (FEED, START, END, STATE, COUNTERS)
