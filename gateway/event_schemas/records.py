"""``record.*``: records from people and other systems (MES, LIMS), generated from their
pydantic models (gateway/records/models.py, the one definition; docs/records.md)."""

from __future__ import annotations

from typing import Any

from gateway.event_schemas.spec import JSON, EventSpec, Field, nullable, string
from gateway.records.models import MODELS, Record

__all__ = ["RECORD_SPECS", "model_fields"]

_DROP = ("title", "default")


def _plain(node: Any, defs: JSON) -> Any:
    """A pydantic schema node in the specs' vocabulary: ``$ref`` inlined, titles and defaults
    dropped, ``anyOf [X, null]`` written as X or null (:func:`nullable`)."""
    if isinstance(node, list):
        return [_plain(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _plain({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    out = {k: _plain(v, defs) for k, v in node.items() if k not in _DROP and k != "$defs"}
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and len(any_of) == 2 and {"type": "null"} in any_of:
        (other,) = [s for s in any_of if s != {"type": "null"}]
        if "enum" in other:  # the enum says the type; null is added to it
            other = {k: v for k, v in other.items() if k != "type"}
        rest = {k: v for k, v in out.items() if k != "anyOf"}
        out = {**nullable(other), **rest}
    if out.get("format") == "date":
        out.setdefault("pattern", r"^\d{4}-\d{2}-\d{2}$")
    return out


def model_fields(model: type[Record]) -> tuple[Field, ...]:
    """The spec fields of a record model (descriptions and constraints from the model)."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", [])) | {"record_id"}
    out = []
    for name, prop in schema["properties"].items():
        plain = _plain(prop, defs)
        description = plain.pop("description", "")
        if name == "record_id":  # always filled in the event (message id or row hash)
            plain = string(minLength=1, maxLength=128)
        out.append(Field(name, plain, description, required=name in required))
    return tuple(out)


COMMON = (
    Field(
        "issuer",
        nullable(string(minLength=1)),
        "Who sent it: the issuer of the signed message (`commands:` issuers with a `records` "
        "grant), null when records are open (`commands: {mode: open}`) and the sender named none.",
    ),
    Field(
        "source",
        string(minLength=1),
        "How it arrived: `mqtt`, or `csv:{file name}:{row}` for `saltgw import`.",
    ),
)

_META: dict[str, tuple[str, str, str, JSON]] = {
    "material_receipt": (
        "A lot of raw or auxiliary material was received and checked.",
        "QB/T 5279-2018 table 1 (原辅料信息), 10.1 (入厂验收检验), 5.1 (原辅料管理)",
        "either",
        {
            "device": None,
            "batch": None,
            "data": {
                "record_id": "RCV-2026-1121-07", "material": "原盐", "category": "raw",
                "supplier": "某某盐矿有限公司", "supplier_licence": None, "lot": "YS-20261120-3",
                "quantity": 30.0, "unit": "t", "received": "2026-11-21",
                "production_date": "2026-11-18", "standard": "GB/T 5462", "factory_report":
                "CC-8812", "verdict": "pass", "inspector": "王检", "disposition": None,
                "issuer": "lims-01", "source": "mqtt",
            },
        },
    ),
    "inspection": (
        "A lab inspection of a product batch or a material lot.",
        "QB/T 5279-2018 table 2 row 3 (检验信息), table 3 row 4 (产品检验报告), 5.1 (质检管理)",
        "either",
        {
            "device": None,
            "batch": "20261122-L1-01",
            "data": {
                "record_id": "LIMS-R-1122-01", "sample": "S-1122-01", "batch": "20261122-L1-01",
                "lot": None, "product": "加碘精制盐 400g", "sampled": "2026-11-22",
                "sampler": "李取", "sample_received": "2026-11-22", "receiver": "张收",
                "method": "GB 2721-2015", "equipment": None,
                "items": [
                    {"item": "碘含量", "result": "25.3 mg/kg", "verdict": "pass"},
                    {"item": "氯化钠", "result": "99.1 g/100g", "verdict": "pass"},
                ],
                "verdict": "pass", "grade": "一级", "inspector": "赵检", "reviewer": "钱审",
                "approver": "孙批", "issuer": "lims-01", "source": "mqtt",
            },
        },
    ),
    "release": (
        "A batch was released, or held.",
        "QB/T 5279-2018 table 3 row 3 (产品放行记录, 产品留样记录); table 6 row 23 is public only "
        "once released",
        "required",
        {
            "device": None,
            "batch": "20261122-L1-01",
            "data": {
                "record_id": "REL-1122-01", "batch": "20261122-L1-01", "decision": "released",
                "by": "周放", "at": "2026-11-22T16:00:00+08:00", "sample": "S-1122-01",
                "retained_sample": "LY-1122-01", "reason": None, "issuer": "lims-01",
                "source": "mqtt",
            },
        },
    ),
    "nonconforming": (
        "Non-conforming product was handled.",
        "QB/T 5279-2018 table 3 row 3 (不合格产品处置记录), 5.1 (不合格处理管理)",
        "required",
        {
            "device": None,
            "batch": "20261122-L1-02",
            "data": {
                "record_id": "NC-1122-01", "batch": "20261122-L1-02",
                "codes": ["8035A1B2C3D4E5F6G7H8"], "quantity": 40.0, "unit": "bag",
                "reason": "封口不良", "disposition": "rework", "detail": "重新封口后复检",
                "by": "吴管", "at": "2026-11-22T17:00:00+08:00", "issuer": "mes-01",
                "source": "mqtt",
            },
        },
    ),
    "return": (
        "Returned product was handled.",
        "QB/T 5279-2018 table 3 row 3 (退货处置记录)",
        "either",
        {
            "device": None,
            "batch": "20261122-L1-01",
            "data": {
                "record_id": "TH-1205-01", "codes": ["8035A1B2C3D4E5F6G7H8"],
                "batch": "20261122-L1-01", "party": "泰安市盐业公司", "order": "TH20261205-01",
                "quantity": 1.0, "unit": "bag", "reason": "包装破损", "disposition": "destroy",
                "detail": "现场销毁", "by": "吴管", "at": "2026-12-05T10:00:00+08:00",
                "issuer": "mes-01", "source": "mqtt",
            },
        },
    ),
}  # fmt: skip


def _spec(kind: str) -> EventSpec:
    title, records, batch, example = _META[kind]
    model = MODELS[kind]
    return EventSpec(
        type=f"record.{kind}",
        title=title,
        meaning=(model.__doc__ or "").replace("\n", " ")
        + " Sent by MES or LIMS on `…/{line}/record/"
        + kind
        + "` or imported from CSV with `saltgw import` (docs/records.md); the gateway journals "
        "it once per `record_id`.",
        records=records,
        source="MES / LIMS through the gateway (gateway/records/router.py, `saltgw import`)",
        fields=(*model_fields(model), *COMMON),
        example=example,
        device="null",
        batch="required" if batch == "required" else "either",
    )


RECORD_SPECS: tuple[EventSpec, ...] = tuple(_spec(k) for k in MODELS)
