"""``pack.*``, ``ship.*`` and ``recall.scan``: codes read on the packing line, bag → case →
pallet binding, outbound / inbound / recall scanning (gateway/profiles/bag_scanner.py,
packing.py, shipping_scanner.py, metal_detector.py, checkweigher.py; docs/traceability.md)."""

from __future__ import annotations

from gateway.event_schemas.spec import (
    JSON,
    EventSpec,
    Field,
    array,
    boolean,
    const,
    enum,
    integer,
    nullable,
    number,
    string,
)

__all__ = ["CODE_RE", "PACK_SPECS", "SHIP_SPECS", "code"]

#: A checked traceability code (QB/T 5279-2018 6.2): the 4-digit enterprise code of Annex A,
#: then the in-house code (at most 20 printable ASCII characters, `codes.charset`).
CODE_RE = r"^[89][0-9]{3}[!-~]{1,20}$"


def code(**kw: object) -> JSON:
    return string(pattern=CODE_RE, **kw)


def codes(**kw: object) -> JSON:
    return array(code(), uniqueItems=True, **kw)


SKU = "The product (SKU) of the bag scanner that commissioned it (`sku` of its profile)."

BAG = EventSpec(
    type="pack.bag",
    title="A bag's code read and commissioned.",
    meaning="The bag scanner (or camera) on the packing line read a valid code never seen at "
    "this stage: the bag is commissioned in the line's running batch and waits for its case. "
    "One event per code read; a code seen before raises `alarm.duplicate_code` instead, an "
    "invalid one `alarm.invalid_code`.",
    records="QB/T 5279-2018 6.1, 6.3 (codes uploaded), 10.2.2 (codes read on the line), "
    "table 2 row 2 (分装信息: 产品追溯编码)",
    source="profile `bag_scanner` (gateway/profiles/bag_scanner.py)",
    fields=(
        Field("code", code(), "The bag's traceability code."),
        Field("sku", string(minLength=1), SKU),
        Field(
            "resolver",
            string(minLength=1),
            "Host of the resolver URL the code was read from (QB/T 5279-2018 8.2); absent for a "
            "bare code.",
            required=False,
        ),
    ),
    example={
        "device": "scan1",
        "batch": "20261122-L1-01",
        "data": {"code": "8035K7M2Q9XW4T", "sku": "s400g", "resolver": "trace.example.cn"},
    },
)

NOREAD = EventSpec(
    type="pack.noread",
    title="A scanner saw a bag (or a case or pallet label) but read no code.",
    meaning="The scanner reported a no-read (its no-read marker, or a camera frame without a "
    "code). At the bag scanner the bag still takes its place in the next case (an empty slot, "
    "so that the case is bound short rather than with the wrong bags); at a label scanner the "
    "pending bags (cases) are left unbound (`alarm.aggregation` `label_noread`).",
    records="QB/T 5279-2018 10.2.2; the 2023 training speech part 三 (low scan rates)",
    source="profiles `bag_scanner`, `case_packer`, `pallet_builder`",
    fields=(
        Field("stage", enum("bag", "case", "pallet"), "Which scanner: bag, case or pallet label."),
        Field(
            "raw",
            nullable(string()),
            "What the scanner sent (its no-read text, or the camera frame's name); null when "
            "nothing.",
        ),
        Field("sku", string(minLength=1), "bag stage: " + SKU, required=False),
    ),
    example={
        "device": "scan1",
        "batch": "20261122-L1-01",
        "data": {"stage": "bag", "raw": "NoRead", "sku": "s400g"},
    },
)

REJECT = EventSpec(
    type="pack.reject",
    title="A bag taken off the line.",
    meaning="`reason: metal` — the metal detector confirmed the reject of a pack with metal in "
    "it; `net_content` — the checkweigher rejected a bag; `reject_chute` — a scanner at the "
    "reject chute read the code of a rejected bag, which can then never be packed "
    "(`alarm.aggregation` `rejected_child` if it is tried).",
    records="QB/T 5279-2018 table 3 row 3 (不合格产品处置记录); table 2 row 4",
    source="profiles `metal_detector`, `checkweigher`, `bag_scanner` with `action: reject`",
    fields=(
        Field("reason", enum("metal", "net_content", "reject_chute"), "Why it was rejected."),
        Field(
            "detection",
            integer(minimum=0),
            "metal: the detection counter's value (the `ccp.metal_detector` record's).",
            required=False,
            when={"reason": "metal"},
        ),
        Field(
            "value",
            number(minimum=0),
            "net_content: the bag's net weight.",
            "g",
            required=False,
            when={"reason": "net_content"},
        ),
        Field(
            "unit",
            const("g"),
            "net_content: unit of `value`.",
            required=False,
            when={"reason": "net_content"},
        ),
        Field(
            "count",
            integer(minimum=0),
            "net_content: the weighing counter's value (the `ccp.net_content` record's).",
            required=False,
            when={"reason": "net_content"},
        ),
        Field(
            "code",
            code(),
            "reject_chute: the rejected bag's code.",
            required=False,
            when={"reason": "reject_chute"},
        ),
        Field(
            "commissioned",
            boolean(),
            "reject_chute: the code was commissioned on this line (false: a code the line never "
            "packed).",
            required=False,
            when={"reason": "reject_chute"},
        ),
        Field(
            "case",
            code(),
            "reject_chute: the case the bag was bound in (it is taken out of it).",
            required=False,
        ),
    ),
    example={
        "device": "cw1",
        "batch": "20261122-L1-01",
        "data": {"reason": "net_content", "value": 380.0, "unit": "g", "count": 2},
    },
)


def _packed(level: str, child: str, ratio: str) -> EventSpec:
    return EventSpec(
        type=f"pack.{level}",
        title=f"{child.capitalize()}s bound into a {level}.",
        meaning=f"The {level} label scanner read a {level}'s label and the {child}s that "
        f"passed since were bound into it: every {child} identified and as many as the pack "
        f"ratio (`{ratio}`), or fewer after an operator closed the short {level} as partial "
        f"(`close_partial`, then `partial: true` with the reason). A binding the state machine "
        "refuses gives `alarm.aggregation` instead, and binds nothing. The envelope's `batch` "
        f"is the {child}s' batch.",
        records="QB/T 5279-2018 5.1 (每批次最小包装与外包装建立关联关系), 8.4, table 2 row 2 "
        "(内外包装追溯码关联)",
        source=f"profile `{'case_packer' if level == 'case' else 'pallet_builder'}` "
        "(gateway/profiles/packing.py); an operator's `close_partial` command",
        fields=(
            Field("code", code(), f"The {level}'s code (its label)."),
            Field("children", codes(minItems=1), f"The {child} codes bound into it."),
            Field("count", integer(minimum=1), "Number of children."),
            Field(
                "expected",
                integer(minimum=0),
                f"The pack ratio: {child}s a full {level} holds.",
            ),
            Field("sku", nullable(string(minLength=1)), "The children's product; null: unknown."),
            Field("partial", boolean(), "Closed short by an operator (fewer than `expected`)."),
            Field(
                "partial_reason",
                string(minLength=1),
                "The operator's reason for closing it short.",
                required=False,
                when={"partial": True},
            ),
            Field(
                "operator",
                nullable(string()),
                "Who closed it as partial (present after `close_partial`).",
                required=False,
            ),
        ),
        example={
            "device": f"{level}1",
            "batch": "20261122-L1-01",
            "data": {
                "code": f"8035{level.upper()[:4]}000001",
                "children": (
                    ["8035K7M2Q9XW4T", "8035P3D8L1VZ6N", "8035H5R9C2JB8M"]
                    if level == "case"
                    else ["8035CASE000001", "8035CASE000002"]
                ),
                "count": 3 if level == "case" else 2,
                "expected": 3 if level == "case" else 2,
                "sku": "s400g",
                "partial": False,
            },
        },
    )


UNPACK = EventSpec(
    type="pack.unpack",
    title="A case or pallet sent to rework: its children are free again.",
    meaning="An operator (or the MES) unpacked a case or pallet (`unpack` command, "
    "docs/commands.md): its children are no longer bound to it and may be packed again; the "
    "case or pallet code is not used again.",
    records="QB/T 5279-2018 8.4 (a changed package keeps its marks linked)",
    source="profiles `case_packer`, `pallet_builder` (an operator's `unpack` command)",
    fields=(
        Field("code", code(), "The case or pallet unpacked."),
        Field("level", enum("case", "pallet"), "What it was."),
        Field("children", codes(), "The codes it held, now free."),
        Field("reason", string(minLength=1), "The operator's reason."),
        Field("operator", nullable(string()), "Who unpacked it."),
    ),
    example={
        "device": "case1",
        "batch": "20261122-L1-01",
        "data": {
            "code": "8035CASE000001",
            "level": "case",
            "children": ["8035K7M2Q9XW4T", "8035P3D8L1VZ6N", "8035H5R9C2JB8M"],
            "reason": "crushed case",
            "operator": "wang",
        },
    },
)


def _scan(
    etype: str,
    ref: str,
    party: str,
    title: str,
    meaning: str,
    records: str,
    profile: str,
    device: str,
    notes: str = "",
    required_ref: bool = False,
) -> EventSpec:
    ref_text = {
        "order": "The order (出库单号 / 入库单号) the scan belongs to: the profile's `order`, or "
        "the last order barcode scanned; null when there was none.",
        "recall": "The recall id (the profile's `order`, or the last order barcode scanned); "
        "null when there was none.",
    }[ref]
    party_text = {
        "customer": "The customer (往来单位): the profile's `party`, or the order barcode's; "
        "null when unknown.",
        "supplier": "The supplier: the profile's `party`, or the order barcode's; null when "
        "unknown.",
        "party": "The other party of the recall; null when unknown.",
    }[party]
    if required_ref:  # ship.outbound: refused without them (profiles/shipping_scanner.py)
        ref_text = ref_text.replace(
            "null when there was none",
            "never null: a scan without one is refused (`alarm.aggregation` `no_order`)",
        )
        party_text = party_text.replace("null when unknown", "never null (as the order)")
    return EventSpec(
        type=etype,
        title=title,
        meaning=meaning,
        records=records,
        source=f"profile `{profile}` (gateway/profiles/shipping_scanner.py)",
        fields=(
            Field("code", code(), "The code scanned: a bag, case or pallet."),
            Field(
                "level",
                enum("bag", "case", "pallet", "unknown"),
                "What the code is on this line; `unknown`: never packed here (another "
                "producer's code, or a code this line never commissioned).",
            ),
            Field(
                ref,
                string(minLength=1) if required_ref else nullable(string(minLength=1)),
                ref_text,
            ),
            Field(
                party,
                string(minLength=1) if required_ref else nullable(string(minLength=1)),
                party_text,
            ),
            Field(
                "bags",
                integer(minimum=1),
                "Bags the scan counts for (every bag inside a case or pallet).",
            ),
            Field(
                "children",
                codes(),
                "Direct children of a case or pallet (empty for a bag or an unknown code).",
            ),
            Field(
                "bag_codes",
                codes(minItems=1),
                "Every bag the scan counts for, when the code is a case or pallet whose "
                "contents the line's trace store knows (packed on this line, or imported from "
                "its producer's EPCIS documents: `saltgw import CONFIG epcis`, "
                "docs/wholesale.md); absent for a bag and for a code of `level` unknown "
                "(recorded unexpanded). The bridge uploads each bag (table 6 #25, #26).",
                required=False,
            ),
        ),
        example={
            "device": device,
            "batch": None,
            "data": {
                "code": "8035PALL000001",
                "level": "pallet",
                ref: "SO-20261122-7" if ref == "order" else "RC-2026-003",
                party: "泰安市盐业公司",
                "bags": 40,
                "children": ["8035CASE000001", "8035CASE000002"],
            },
        },
        notes=notes,
    )


OUTBOUND = _scan(
    "ship.outbound",
    "order",
    "customer",
    "A bag, case or pallet scanned leaving the plant (sales outbound).",
    "One event per code scanned at the dock; a case or pallet counts for every bag inside it. "
    "A bag already registered outbound raises `alarm.duplicate_code` (stage `outbound`, naming "
    "the earlier order); a code this line never packed raises `alarm.aggregation` "
    "`not_commissioned`, and is registered all the same.",
    "QB/T 5279-2018 10.3.2 (出库扫码登记), 7.4 table 4 (销售出库信息), 5.1 (出库扫描)",
    "outbound_scanner",
    "out1",
    "Table 4 requires the order and the customer, so the gateway never sends one without "
    "them: a code scanned before any order barcode (`SO:{order}|{customer}`) and without "
    "`order`/`party` on the profile is refused with `alarm.aggregation` `no_order` and not "
    "registered (scan it again after the order). The bridge quarantines a `ship.outbound` "
    "from another producer whose `order` or `customer` is null, and also accepts `codes` (a "
    "list) instead of `code`, and `customer_type` (单位类型).",
    required_ref=True,
)

INBOUND = _scan(
    "ship.inbound",
    "order",
    "supplier",
    "A bag, case or pallet scanned in at a wholesaler.",
    "A wholesaler's inbound scanning: one event per code scanned; a case or pallet counts for "
    "every bag inside it (when this store knows its contents). A bag already registered inbound "
    "raises `alarm.duplicate_code` (stage `inbound`).",
    "QB/T 5279-2018 5.2 (入库扫描), table 3 row 5 (出入库信息)",
    "inbound_scanner",
    "in1",
)

RECALL = _scan(
    "recall.scan",
    "recall",
    "party",
    "A bag, case or pallet scanned in a recall.",
    "Recalled goods scanned at the recall desk: one event per code; a case or pallet counts for "
    "every bag inside it. `saltgw trace --batch B` lists a batch's codes and where they went.",
    "QB/T 5279-2018 10.6 (召回扫码登记), 5.1 (召回管理), 7.6 (问题产品召回信息)",
    "recall_scanner",
    "recall1",
)

PACK_SPECS = (
    BAG,
    NOREAD,
    REJECT,
    _packed("case", "bag", "bags_per_case"),
    _packed("pallet", "case", "cases_per_pallet"),
    UNPACK,
)
SHIP_SPECS = (OUTBOUND, INBOUND, RECALL)
