"""Case packer and pallet builder: a label scanner binds what passed since (QB/T 5279-2018 5.1
每批次最小包装与外包装建立关联关系; 8.4 a new outer package's mark stays linked to its contents).

The case label scanner reads each sealed case's label. The case holds the oldest pending bag
slots (bag_scanner), as many as the pack ratio of their product; so does a pallet with the oldest
pending case slots. Per label:

    label read, all slots have codes          → pack.case / pack.pallet (closed)
    label read, some slots without a code     → bound *open* + alarm.aggregation short_case
                                                 (short_pallet):
      (bags not read) or fewer slots pending    an operator closes it as partial with a reason
                                                 (``close_partial``) or reworks it (``unpack``)
    label read, binding refused               → alarm.aggregation with every reason; nothing bound
    label not read / invalid / duplicate      → the slots are consumed unbound (their bags are
                                                 free for rework) + alarm.aggregation label_noread
                                                 (and the code alarm)

Each handled label also leaves a slot for the next level (the case, or None when it was not
bound closed), and counts an attempt (right first time when bound closed at once).

Operator actions (methods; wired to MQTT commands where gateway/commands.py routes them):
``close_partial(code, reason, operator)``, ``unpack(code, reason, operator)``, ``resync()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import Field

from drivers.base import Reading
from gateway.aggregation import BindResult, Slot
from gateway.events import EventDraft
from gateway.profiles.base import ProfileSpec
from gateway.profiles.scanning import SCANNER_ROLES, ScanningProfile, TraceProfileConfigBase

__all__ = [
    "CASE_PACKER",
    "PALLET_BUILDER",
    "CasePackerProfileConfig",
    "PackingProfile",
    "PalletBuilderProfileConfig",
]

Count = Annotated[int, Field(ge=1, le=10_000)]
Ratio = Count | dict[str, Count]


class _PackingConfigBase(TraceProfileConfigBase):
    max_pending: int | None = Field(
        default=None,
        ge=1,
        description="Most slots kept waiting for a label; older ones are dropped unbound "
        "(alarm.aggregation orphaned) so that a lost label does not shift every later binding. "
        "None = 3 × the pack ratio.",
    )


class CasePackerProfileConfig(_PackingConfigBase):
    profile: Literal["case_packer"] = Field(
        description="A case label scanner after the case packer: binds bags into cases."
    )
    bags_per_case: Ratio = Field(
        description="Pack ratio: bags per case, one number for every product or per SKU "
        "(the bag scanner's `sku`), e.g. {s400g: 20, s1000g: 10}.",
        examples=[20, {"s400g": 20, "s1000g": 10}],
    )


class PalletBuilderProfileConfig(_PackingConfigBase):
    profile: Literal["pallet_builder"] = Field(
        description="A pallet label scanner after the palletiser: binds cases into pallets."
    )
    cases_per_pallet: Ratio = Field(
        description="Cases per pallet, one number for every product or per SKU.",
        examples=[40, {"s400g": 40}],
    )


def _ratio(ratio: Ratio, sku: str | None) -> int | None:
    if isinstance(ratio, int):
        return ratio
    if sku is not None and sku in ratio:
        return ratio[sku]
    return ratio.get("*") or ratio.get("default")


log = logging.getLogger(__name__)


class PackingProfile(ScanningProfile):
    """A label scanner that binds the pending slots of the level below."""

    def __init__(
        self,
        cfg: CasePackerProfileConfig | PalletBuilderProfileConfig,
        tags: Mapping[str, str],
        tz: tzinfo,
    ) -> None:
        super().__init__(cfg, tags, tz)
        if isinstance(cfg, CasePackerProfileConfig):
            self.level, self.child, self.ratio = "case", "bag", cfg.bags_per_case
        else:
            self.level, self.child, self.ratio = "pallet", "case", cfg.cases_per_pallet
        self.stage = self.level
        self.max_pending = cfg.max_pending

    # -- labels -----------------------------------------------------------------------------------
    def on_reading(self, reading: Reading) -> list[EventDraft]:
        ts = reading.ts
        labels = self.codes_of(reading)
        if not labels and not self.is_noread(reading):
            return []
        with self.trace.db.transaction():
            out = self._drop_stale(ts)
            if not labels:
                return out + self._unlabeled(ts, "label not read", None)
            for raw in labels:
                out.extend(self._label(raw, ts))
            return out

    def _expected(self, slots: list[Slot]) -> int:
        sku = next((s.sku for s in slots if s.sku), None)
        n = _ratio(self.ratio, sku)
        if n is None:  # a product without a ratio: the largest one, and say so
            assert isinstance(self.ratio, dict)
            n = max(self.ratio.values())
            log.warning("%s: no pack ratio for product %r; using %d", self.device, sku, n)
        return n

    def _take(self) -> tuple[list[Slot], int]:
        pending = self.trace.agg.pending(self.child)
        n = self._expected(pending[:1])
        return self.trace.agg.take_slots(self.child, n), n

    def _label(self, raw: str, ts: datetime) -> list[EventDraft]:
        check = self.check(raw)
        if not check.valid or check.code is None:
            return [self.invalid_alarm(check, ts), *self._unlabeled(ts, "label invalid", raw)]
        seen = self.trace.codes.see(check.code, self.level, ts, self.device)
        if seen.duplicate:
            return [self.duplicate_alarm(seen, ts), *self._unlabeled(ts, "label duplicate", raw)]
        slots, n = self._take()
        children = [s.code for s in slots if s.code is not None]
        if not children:
            self._count(ts, rft=False)
            self._push_up(None, ts, None)
            detail = (
                f"{self.level} {check.code}: none of the {len(slots)} {self.child}s pending "
                "for this label was identified"
            )
            return [self._alarm("empty", check.code, [], detail, ts)]
        res = self.trace.agg.bind(check.code, children, level=self.level, expected=n, ts=ts)
        self._count(ts, rft=res.status == "closed")
        return self._result(res, slots, ts)

    def _result(self, res: BindResult, slots: list[Slot], ts: datetime) -> list[EventDraft]:
        if not res.ok:
            self._push_up(None, ts, res.batch)
            detail = "; ".join(r.detail for r in res.refusals)
            alarm = self._alarm(res.refusals[0].reason, res.parent, res.children, detail, ts)
            alarm.data["reasons"] = [r.as_dict() for r in res.refusals]
            return [alarm]
        self._push_up(res.parent, ts, res.batch, res.sku)
        if res.status == "closed":
            return [self._packed(res, ts)]
        missing = len(slots) - len(res.children)
        detail = (
            f"{self.level} {res.parent} holds {len(res.children)} of {res.expected} "
            f"{self.child}s ({missing} not identified, {res.expected - len(slots)} not there): "
            "close it as partial with a reason, or rework it"
        )
        alarm = self._alarm(f"short_{self.level}", res.parent, res.children, detail, ts)
        alarm.data["expected"] = res.expected
        return [alarm]

    def _unlabeled(self, ts: datetime, why: str, raw: str | None) -> list[EventDraft]:
        slots, _ = self._take()
        self._count(ts, rft=False)
        self._push_up(None, ts, None)
        children = [s.code for s in slots if s.code is not None]
        detail = (
            f"{why}: {len(slots)} {self.child} slot(s) left unbound ({len(children)} with codes); "
            "rework them"
        )
        alarm = self._alarm("label_noread", None, children, detail, ts)
        alarm.data["raw"] = raw
        out = [alarm]
        if raw is None:
            data = {"stage": self.level, "raw": None}
            out.insert(0, EventDraft("pack.noread", ts, data, device=self.device))
        return out

    def _drop_stale(self, ts: datetime) -> list[EventDraft]:
        pending = self.trace.agg.pending(self.child)
        limit = self.max_pending or 3 * self._expected(pending[:1])
        if len(pending) <= limit:
            return []
        dropped = self.trace.agg.take_slots(self.child, len(pending) - limit)
        codes = [s.code for s in dropped if s.code is not None]
        detail = (
            f"{len(dropped)} {self.child} slot(s) waited behind more than {limit} others for "
            f"a {self.level} label and were dropped unbound (a label was lost?)"
        )
        return [self._alarm("orphaned", None, codes, detail, ts)]

    # -- operator actions -------------------------------------------------------------------------
    def close_partial(
        self, code: str, reason: str, operator: str | None, now: datetime
    ) -> list[EventDraft]:
        """Close an open (short) case/pallet as partial; pack.case/pack.pallet or an alarm."""
        res = self.trace.agg.close_partial(code, reason, now)
        if not res.ok:
            r = res.refusals[0]
            return [self._alarm(r.reason, code, res.children, r.detail, now)]
        ev = self._packed(res, now)
        ev.data["operator"] = operator
        return [ev]

    def unpack(
        self, code: str, reason: str, operator: str | None, now: datetime
    ) -> list[EventDraft]:
        """Rework: pack.unpack with the freed children, or alarm.aggregation when refused."""
        res = self.trace.agg.unpack(code, reason, now)
        if res.refusals:
            r = res.refusals[0]
            return [self._alarm(r.reason, code, [], r.detail, now)]
        data = {
            "code": code,
            "level": res.level,
            "children": res.children,
            "reason": reason,
            "operator": operator,
        }
        return [EventDraft("pack.unpack", now, data, device=self.device)]

    def resync(self, now: datetime) -> list[EventDraft]:
        """Drop every pending slot (after the line was cleared by hand)."""
        dropped = self.trace.agg.take_slots(self.child, 1_000_000)
        codes = [s.code for s in dropped if s.code is not None]
        detail = f"operator resync: {len(dropped)} pending {self.child} slot(s) dropped"
        return [self._alarm("resync", None, codes, detail, now)] if dropped else []

    # -- helpers ----------------------------------------------------------------------------------
    def _count(self, ts: datetime, *, rft: bool) -> None:
        counts = {f"{self.level}_attempts": 1, f"{self.level}_rft": int(rft)}
        self.trace.counters.add(counts, ts=ts, batch=self.line.batch)

    def _push_up(
        self, code: str | None, ts: datetime, batch: str | None, sku: str | None = None
    ) -> None:
        if self.level == "case":
            self.trace.agg.push_slot("case", code, sku=sku, batch=batch, ts=ts)

    def _packed(self, res: BindResult, ts: datetime) -> EventDraft:
        data: dict[str, Any] = {
            "code": res.parent,
            "children": res.children,
            "count": len(res.children),
            "expected": res.expected,
            "sku": res.sku,
            "partial": res.partial_reason is not None,
        }
        if res.partial_reason is not None:
            data["partial_reason"] = res.partial_reason
        return EventDraft(f"pack.{self.level}", ts, data, device=self.device, batch=res.batch)

    def _alarm(
        self, reason: str, parent: str | None, children: list[str], detail: str, ts: datetime
    ) -> EventDraft:
        data: dict[str, Any] = {
            "reason": reason,
            "level": self.level,
            "parent": parent,
            "children": children,
            "detail": detail,
        }
        return EventDraft("alarm.aggregation", ts, data, device=self.device)


CASE_PACKER = ProfileSpec(
    name="case_packer",
    config_model=CasePackerProfileConfig,
    create=PackingProfile,
    roles=SCANNER_ROLES,
    description="Case label scanner: binds the bags scanned since into the case (pack.case), "
    "alarms short, refused and unlabeled cases (alarm.aggregation).",
)

PALLET_BUILDER = ProfileSpec(
    name="pallet_builder",
    config_model=PalletBuilderProfileConfig,
    create=PackingProfile,
    roles=SCANNER_ROLES,
    description="Pallet label scanner: binds the cases closed since into the pallet "
    "(pack.pallet), alarms short, refused and unlabeled pallets.",
)
