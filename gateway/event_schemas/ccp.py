"""``ccp.*``: the critical control point records (gateway/profiles/records.py and the CCP
profiles; docs/profiles.md)."""

from __future__ import annotations

from gateway.event_schemas.spec import (
    EventSpec,
    Field,
    boolean,
    const,
    enum,
    integer,
    nullable,
    number,
    obj,
)

__all__ = ["CCP_SPECS", "limits_bool", "limits_numeric", "verdict_field"]

T2R4 = "QB/T 5279-2018 7.2 table 2 row 4 (关键控制点的信息)"


def verdict_field() -> Field:
    return Field(
        "verdict",
        enum("pass", "fail"),
        "`pass` when the value is within the limits (bounds inclusive), else `fail` (which also "
        "raises `alarm.ccp`). A value the gateway cannot trust gets no record, only "
        "`alarm.device`.",
    )


def limits_numeric(unit: str, *, lo_null: bool = True, hi_null: bool = True) -> Field:
    lo = number() if not lo_null else nullable(number())
    hi = number() if not hi_null else nullable(number())
    return Field(
        "limits",
        obj(
            Field("lo", lo, "Lowest acceptable value (inclusive); null: unbounded.", unit),
            Field("hi", hi, "Highest acceptable value (inclusive); null: unbounded.", unit),
        ),
        "The limits the value was judged against.",
    )


def limits_bool(*extra: Field) -> Field:
    return Field(
        "limits",
        obj(Field("expected", const(True), "The value a passing check has."), *extra),
        "A boolean check passes when `value` is `expected`.",
    )


def missed_field(what: str) -> Field:
    return Field(
        "missed",
        integer(minimum=1),
        f"The device's counter advanced by more than one since the previous poll: the number "
        f"of {what} not seen (this record is the last one's).",
        required=False,
    )


NET_CONTENT = EventSpec(
    type="ccp.net_content",
    title="Net content of one bag (checkweigher).",
    meaning="One record per weighing, detected by the checkweigher's weighing counter. The lower "
    "limit defaults to the nominal quantity minus the tolerable negative deviation of JJF "
    "1070-2005 table 3 (`gateway/profiles/tolerance.py`); a bag under it fails.",
    records=f"{T2R4}: 净含量检测; 10.2.3 (检验)",
    source="profile `checkweigher` (gateway/profiles/checkweigher.py)",
    fields=(
        Field("value", number(minimum=0), "Net weight of the bag.", "g"),
        Field("unit", const("g"), "Unit of `value` and the limits."),
        limits_numeric("g"),
        verdict_field(),
        Field("nominal", number(exclusiveMinimum=0), "Nominal net content.", "g"),
        Field("count", integer(minimum=0), "The device's weighing counter for this bag."),
        missed_field("weighings"),
    ),
    example={
        "device": "cw1",
        "batch": "20261122-L1-01",
        "data": {
            "value": 402.5,
            "unit": "g",
            "limits": {"lo": 388.0, "hi": None},
            "verdict": "pass",
            "nominal": 400,
            "count": 11,
        },
    },
)

METAL_DETECTOR = EventSpec(
    type="ccp.metal_detector",
    title="A metal detector's detection or test-piece verification.",
    meaning="`check: detection` — a pack with metal in it: `value` true when the device "
    "confirmed its reject within `reject_confirm_s` (pass, with a `pack.reject`), false when it "
    "did not (fail: a contaminated pack may have passed). `check: verification` — one record "
    "per test piece (Fe, non-Fe, stainless steel) of a periodic verification: `value` = the "
    "piece was detected; it fails when not detected or when the piece used was larger than "
    "required (`limits.max_size_mm`).",
    records=f"{T2R4}: 金属检测仪",
    source="profile `metal_detector` (gateway/profiles/metal_detector.py)",
    fields=(
        Field("value", boolean(), "detection: the reject was confirmed; verification: detected."),
        Field("unit", {"type": "null"}, "Always null (a boolean check)."),
        limits_bool(
            Field(
                "max_size_mm",
                number(exclusiveMinimum=0),
                "verification: the largest test piece that counts (the configured size).",
                "mm",
                required=False,
            ),
        ),
        verdict_field(),
        Field("check", enum("detection", "verification"), "Which kind of record."),
        Field(
            "detection",
            integer(minimum=0),
            "The detection counter's value for this detection.",
            required=False,
            when={"check": "detection"},
        ),
        Field(
            "test_piece",
            enum("fe", "non_fe", "stainless"),
            "Which test piece: ferrous, non-ferrous, stainless steel.",
            required=False,
            when={"check": "verification"},
        ),
        Field(
            "size_mm",
            number(exclusiveMinimum=0),
            "Diameter of the piece used (as the device reports it, else the required one).",
            "mm",
            required=False,
            when={"check": "verification"},
        ),
        Field(
            "verification",
            integer(minimum=0),
            "The verification counter's value.",
            required=False,
            when={"check": "verification"},
        ),
        missed_field("verifications"),
    ),
    extra={
        "allOf": [
            {
                "if": {"properties": {"check": const("verification")}, "required": ["check"]},
                "then": {"properties": {"limits": {"required": ["max_size_mm"]}}},
            }
        ]
    },
    notes="With `check: verification`, `limits.max_size_mm` is required too.",
    example={
        "device": "md1",
        "batch": "20261122-L1-01",
        "data": {
            "value": True,
            "unit": None,
            "limits": {"expected": True, "max_size_mm": 1.5},
            "verdict": "pass",
            "check": "verification",
            "test_piece": "fe",
            "size_mm": 1.5,
            "verification": 5,
        },
    },
)

MAGNET_ROD = EventSpec(
    type="ccp.magnet_rod",
    title="An inspection of the magnet rods (magnetic grate).",
    meaning="An operator pulls the rods, cleans them, weighs the iron caught and measures their "
    "surface flux density, and enters both at the inspection panel: one record per inspection. "
    "`value` is the weakest rod's strength; below `limits.lo` the rod must be replaced.",
    records=f"{T2R4}: 磁棒的检测记录",
    source="profile `magnet_rod` (gateway/profiles/magnet_rod.py)",
    fields=(
        Field("value", number(minimum=0), "Surface flux density of the weakest rod.", "Gs"),
        Field("unit", const("Gs"), "Unit of `value` (1 mT = 10 Gs)."),
        limits_numeric("Gs", lo_null=False),
        verdict_field(),
        Field("check", const("inspection"), "Always `inspection`."),
        Field("inspection", integer(minimum=0), "The panel's inspection counter."),
        Field(
            "iron_g",
            number(minimum=0),
            "Iron caught since the previous cleaning (absent when the tag is not bound or was "
            "unreadable).",
            "g",
            required=False,
        ),
        missed_field("inspections"),
    ),
    example={
        "device": "panel1",
        "batch": "20261122-L1-01",
        "data": {
            "value": 11020.0,
            "unit": "Gs",
            "limits": {"lo": 8000.0, "hi": None},
            "verdict": "pass",
            "check": "inspection",
            "inspection": 13,
            "iron_g": 0.8,
        },
    },
)

SIEVE = EventSpec(
    type="ccp.sieve",
    title="A check of the safety sieve's screen.",
    meaning="`check: inspection` — an operator checked the screen and entered intact yes/no; "
    "`check: sensor` — the mesh-break detector tripped (a failed record at once, without waiting "
    "for the next inspection).",
    records=f"{T2R4}: 安全筛检测",
    source="profile `sieve` (gateway/profiles/sieve.py)",
    fields=(
        Field("value", boolean(), "The screen is intact."),
        Field("unit", {"type": "null"}, "Always null (a boolean check)."),
        limits_bool(),
        verdict_field(),
        Field("check", enum("inspection", "sensor"), "Operator inspection or mesh-break sensor."),
        Field(
            "inspection",
            integer(minimum=0),
            "The panel's inspection counter.",
            required=False,
            when={"check": "inspection"},
        ),
        Field(
            "aperture_mm",
            number(exclusiveMinimum=0),
            "Nominal aperture of the screen (when configured).",
            "mm",
            required=False,
        ),
        missed_field("inspections"),
    ),
    example={
        "device": "panel1",
        "batch": "20261122-L1-01",
        "data": {
            "value": True,
            "unit": None,
            "limits": {"expected": True},
            "verdict": "pass",
            "check": "inspection",
            "inspection": 21,
            "aperture_mm": 2.0,
        },
    },
)

IODINE = EventSpec(
    type="ccp.iodine",
    title="Iodine content of the salt being iodized.",
    meaning="`source: analyser` — one record per new result of an online analyser (or the lab's "
    "result entered at the doser). `source: dosing` — one record per `record_interval_s`, "
    "computed from the mean salt and KIO3 solution flows while the line ran (GB 26878-2011 "
    "formula, `gateway/profiles/iodine_limits.py`). Limits from GB 26878-2011 table 1 for the "
    "province's level `target_mg_kg` (20 → 14~26, 25 → 18~33, 30 → 21~39 mg/kg).",
    records="QB/T 5279-2018 10.2.3 (加碘, a collection node of production); limits GB 26878-2011",
    source="profile `iodine` (gateway/profiles/iodine.py, iodine_dosing.py)",
    fields=(
        Field("value", number(minimum=0), "Iodine content (as I), rounded to 0.01.", "mg/kg"),
        Field("unit", const("mg/kg"), "Unit of `value` and the limits."),
        limits_numeric("mg/kg"),
        verdict_field(),
        Field("source", enum("analyser", "dosing"), "Where the value comes from."),
        Field(
            "target_mg_kg",
            enum(20, 25, 30),
            "The province's selected level (GB 26878-2011 3.3).",
            "mg/kg",
        ),
        Field(
            "sample",
            integer(minimum=0),
            "analyser: the sample counter's value (sampling counter), or the number of the "
            "sample since the gateway started (sampling change, periodic).",
            required=False,
            when={"source": "analyser"},
        ),
        Field(
            "sampling",
            enum("change", "periodic"),
            "analyser without a sample counter: what made this a new sample — the value moved "
            "by more than the tolerance (change) or the interval came round while the line ran "
            "(periodic); absent: the sample counter advanced.",
            required=False,
        ),
        missed_field("analyser results"),
        Field(
            "salt_flow_kg_h",
            number(minimum=0),
            "dosing: mean salt flow over the interval.",
            "kg/h",
            required=False,
            when={"source": "dosing"},
        ),
        Field(
            "solution_flow_l_h",
            number(minimum=0),
            "dosing: mean KIO3 solution flow over the interval.",
            "L/h",
            required=False,
            when={"source": "dosing"},
        ),
        Field(
            "kio3_g_per_l",
            number(exclusiveMinimum=0),
            "dosing: KIO3 concentration of the solution (configured).",
            "g/L",
            required=False,
            when={"source": "dosing"},
        ),
        Field(
            "interval_s",
            number(minimum=0),
            "dosing: length of the interval.",
            "s",
            required=False,
            when={"source": "dosing"},
        ),
        Field(
            "samples",
            integer(minimum=1),
            "dosing: readings averaged (those taken while the line ran).",
            required=False,
            when={"source": "dosing"},
        ),
    ),
    example={
        "device": "io1",
        "batch": "20261122-L1-01",
        "data": {
            "value": 24.99,
            "unit": "mg/kg",
            "limits": {"lo": 18.0, "hi": 33.0},
            "verdict": "pass",
            "source": "dosing",
            "target_mg_kg": 25,
            "salt_flow_kg_h": 10000.0,
            "solution_flow_l_h": 8.43,
            "kio3_g_per_l": 50.0,
            "interval_s": 10.0,
            "samples": 2,
        },
    },
)

CCP_SPECS = (NET_CONTENT, METAL_DETECTOR, MAGNET_ROD, SIEVE, IODINE)
