"""The records people and other systems (MES, LIMS) send, one pydantic model per kind: the one
definition the MQTT messages and CSV rows are validated with, the events' ``data`` is built
from, and the event schemas (``gateway/event_schemas/records.py``) are generated from.

    kind              event type                QB/T 5279-2018
    material_receipt  record.material_receipt   table 1 (原辅料信息), 10.1 (入厂验收检验)
    inspection        record.inspection         table 2 row 3 (检验信息), table 3 row 4 (检验报告)
    release           record.release            table 3 row 3 (产品放行记录, 产品留样记录)
    nonconforming     record.nonconforming      table 3 row 3 (不合格产品处置记录), 5.1 质检管理
    return            record.return             table 3 row 3 (退货处置记录)

Verdicts are ``pass`` / ``fail``; ``合格`` / ``不合格`` are accepted and stored as those.
Times carry a UTC offset (RFC 3339); dates are ``YYYY-MM-DD``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

__all__ = [
    "KINDS",
    "MODELS",
    "Inspection",
    "InspectionItem",
    "MaterialReceipt",
    "Nonconforming",
    "Record",
    "Release",
    "Return",
    "event_type",
    "names_codes",
    "verdict_text",
]

_VERDICTS = {"pass": "pass", "fail": "fail", "合格": "pass", "不合格": "fail"}
# characters XML 1.0 cannot carry: refused here, or the bridge would quarantine the event
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _verdict(v: Any) -> Any:
    if isinstance(v, str) and v.strip() in _VERDICTS:
        return _VERDICTS[v.strip()]
    return v


def _text_ok(v: Any) -> Any:
    if isinstance(v, str) and _NOT_XML.search(v):
        raise ValueError("holds control characters")
    return v


def _time(v: Any) -> Any:
    """An RFC 3339 time with offset, kept as text."""
    if not isinstance(v, str):
        raise ValueError("must be a time like 2026-11-22T15:00:00+08:00")
    try:
        t = datetime.fromisoformat(v.strip())
    except ValueError:
        raise ValueError(f"{v[:40]!r} is not a time like 2026-11-22T15:00:00+08:00") from None
    if t.tzinfo is None:
        raise ValueError(f"{v[:40]!r} has no UTC offset (write e.g. +08:00)")
    return t.isoformat()


Text = Annotated[
    str,
    BeforeValidator(_text_ok),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128),
]
LongText = Annotated[
    str,
    BeforeValidator(_text_ok),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=1024),
]
Ref = Annotated[
    str,
    BeforeValidator(_text_ok),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S+$"),
]
Verdict = Annotated[Literal["pass", "fail"], BeforeValidator(_verdict)]
Time = Annotated[str, BeforeValidator(_time)]


class Record(BaseModel):
    """What every record carries besides its own fields."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    record_id: Ref | None = Field(
        default=None,
        description="The record's own id in the system it comes from (LIMS report number, MES "
        "document id). The gateway journals a record id once: a record sent again (a re-import, "
        "a retry) is acknowledged as a duplicate. Default: the message id (MQTT) or a hash of "
        "the row's content (CSV).",
    )

    def batch_of(self) -> str | None:
        """The batch the record is about (the event's envelope batch), if any."""
        batch = getattr(self, "batch", None)
        return batch if isinstance(batch, str) else None


class MaterialReceipt(Record):
    """A lot of raw or auxiliary material received and checked at the gate (table 1, 10.1)."""

    material: Text = Field(description="Material name (原辅料名称), e.g. 原盐, 碘酸钾.")
    category: Literal["raw", "auxiliary"] = Field(
        default="raw", description="`raw` (原料) or `auxiliary` (辅料)."
    )
    supplier: Text = Field(description="Supplier (原辅料企业名称).")
    supplier_licence: Text | None = Field(
        default=None, description="Supplier's production licence number (生产许可证编号)."
    )
    lot: Ref = Field(
        description="The supplier's lot (原料批次); feedings name it (`feed.material`)."
    )
    quantity: float = Field(gt=0, description="Quantity received.")
    unit: Text = Field(description="Unit of the quantity (kg, t, bag).")
    received: date = Field(description="Date received (YYYY-MM-DD).")
    production_date: date | None = Field(default=None, description="The lot's production date.")
    standard: Text | None = Field(default=None, description="Material standard (标准编号).")
    factory_report: Text | None = Field(
        default=None, description="The supplier's release test report number (出厂检验报告)."
    )
    verdict: Verdict = Field(description="Incoming inspection (验收检验): `pass` or `fail`.")
    inspector: Text | None = Field(default=None, description="Who checked the lot.")
    disposition: LongText | None = Field(
        default=None, description="What was done with a failed lot (不合格原料处置)."
    )


class InspectionItem(BaseModel):
    """One test of an inspection: what, the result as the lab wrote it, its verdict."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    item: Text = Field(description="The test item (检验项目), e.g. 碘含量.")
    result: Text = Field(description="The result as the lab reports it, with its unit.")
    verdict: Verdict | None = Field(default=None, description="This item's verdict, if given.")


class Inspection(Record):
    """A lab inspection of a product batch or a material lot (table 2 row 3, table 3 row 4)."""

    sample: Ref = Field(description="Sample id (样品编号).")
    batch: Ref | None = Field(
        default=None, description="The product batch inspected (exactly one of batch and lot)."
    )
    lot: Ref | None = Field(default=None, description="The material lot inspected.")
    product: Text | None = Field(default=None, description="Product (or material) name.")
    sampled: date = Field(description="Sampling date (取样日期).")
    sampler: Text = Field(description="Who took the sample (取样人).")
    sample_received: date | None = Field(
        default=None, description="Date the lab received the sample (收样日期)."
    )
    receiver: Text | None = Field(default=None, description="Who received it (收样人).")
    method: Text = Field(description="Method or standard followed (检测依据), e.g. GB 2721-2015.")
    equipment: Text | None = Field(default=None, description="Equipment used (检验设备).")
    items: list[InspectionItem] = Field(
        min_length=1, max_length=64, description="The tests and their results (检验结果)."
    )
    verdict: Verdict = Field(description="The inspection's verdict (检验判定).")
    grade: Text | None = Field(default=None, description="Product grade (产品等级), e.g. 一级.")
    inspector: Text = Field(description="Inspector (检验员).")
    reviewer: Text = Field(description="Reviewer (审核人).")
    approver: Text = Field(description="Approver (批准人).")

    @model_validator(mode="after")
    def _one_subject(self) -> Inspection:
        if (self.batch is None) == (self.lot is None):
            raise ValueError("give exactly one of batch (a product batch) and lot (a material lot)")
        return self


class Release(Record):
    """The decision to release or hold a batch (table 3 row 3 产品放行记录, 产品留样记录).
    Table 6 row 23 (检验结果及产品等级) is published only for a released batch."""

    batch: Ref = Field(description="The batch decided on.")
    decision: Literal["released", "held"] = Field(
        description="`released` (放行) or `held` (not released: 暂不放行)."
    )
    by: Text = Field(description="Who decided (放行人).")
    at: Time = Field(description="When (RFC 3339 with offset).")
    sample: Ref | None = Field(
        default=None, description="The inspection's sample id the decision relies on."
    )
    retained_sample: Ref | None = Field(default=None, description="Retained sample id (留样编号).")
    reason: LongText | None = Field(default=None, description="Why (required for `held`).")

    @model_validator(mode="after")
    def _held_says_why(self) -> Release:
        if self.decision == "held" and self.reason is None:
            raise ValueError("a held batch needs a reason")
        return self


class Nonconforming(Record):
    """What was done with non-conforming product (不合格产品处置记录)."""

    batch: Ref = Field(description="The batch the product belongs to.")
    codes: list[Ref] = Field(
        default_factory=list,
        max_length=10_000,
        description="The codes (bags, cases, pallets) concerned; empty: the whole batch.",
    )
    quantity: float | None = Field(default=None, gt=0, description="Quantity concerned.")
    unit: Text | None = Field(default=None, description="Unit of the quantity.")
    reason: LongText = Field(description="What is wrong with it.")
    disposition: Literal["rework", "destroy", "downgrade", "return", "other"] = Field(
        description="`rework` (返工), `destroy` (销毁), `downgrade` (降级), `return` (退回), "
        "`other` (say what in `detail`)."
    )
    detail: LongText | None = Field(default=None, description="How it was handled.")
    by: Text = Field(description="Who decided (处置人).")
    at: Time = Field(description="When (RFC 3339 with offset).")


class Return(Record):
    """Product returned by a customer and what was done with it (退货处置记录). Codes named by a
    return that is destroyed are withdrawn: the resolver no longer shows them as on sale."""

    codes: list[Ref] = Field(
        default_factory=list,
        max_length=10_000,
        description="The returned codes (bags, cases, pallets) as scanned at the return desk.",
    )
    batch: Ref | None = Field(default=None, description="The batch returned, when known.")
    party: Text = Field(description="Who returned it (退货单位): a wholesaler, retailer, user.")
    order: Ref | None = Field(default=None, description="The return's document number (退货单号).")
    quantity: float | None = Field(default=None, gt=0, description="Quantity returned.")
    unit: Text | None = Field(default=None, description="Unit of the quantity.")
    reason: LongText = Field(description="Why it was returned (退货原因).")
    disposition: Literal["restock", "rework", "destroy", "other"] = Field(
        description="`restock` (检验合格后重新入库), `rework` (返工), `destroy` (销毁), "
        "`other` (say what in `detail`)."
    )
    detail: LongText | None = Field(default=None, description="How it was handled.")
    by: Text = Field(description="Who decided (处置人).")
    at: Time = Field(description="When (RFC 3339 with offset).")

    @model_validator(mode="after")
    def _names_what(self) -> Return:
        if not self.codes and self.batch is None:
            raise ValueError("a return names its codes, its batch, or both")
        return self


MODELS: dict[str, type[Record]] = {
    "material_receipt": MaterialReceipt,
    "inspection": Inspection,
    "release": Release,
    "nonconforming": Nonconforming,
    "return": Return,
}
KINDS: tuple[str, ...] = tuple(MODELS)


def names_codes(kind: str) -> bool:
    """Whether records of ``kind`` carry a ``codes`` list (uploaded as the codes concerned)."""
    return "codes" in MODELS[kind].model_fields


def event_type(kind: str) -> str:
    """``record.{kind}``: the event type a record kind is journaled as."""
    return f"record.{kind}"


def verdict_text(verdict: str | None, grade: str | None) -> str | None:
    """Table 6 row 23 as the standard's example writes it: ``合格，一级``."""
    if verdict is None:
        return None
    word = "合格" if verdict == "pass" else "不合格"
    return f"{word}，{grade}" if grade else word
