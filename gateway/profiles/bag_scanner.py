"""Bag scanner → ``pack.bag`` (commissioning), ``pack.noread``, ``alarm.invalid_code``,
``alarm.duplicate_code``; or, at a reject chute, ``pack.reject`` with the bag's code.

QB/T 5279-2018 10.2.2: the packing line reads each product's traceability code; 6.1/8.8: a code
is unique, so a code seen before at this stage is a copied or reprinted mark. Each bag that
passes the scanner also becomes a *slot* for the case packer: its code when it was commissioned,
an empty slot when it was not (no-read, invalid, duplicate), so the case packer knows how many
bags went into a case even when some codes were not read.

Events per frame: one per code (pack.bag, or an alarm), or one pack.noread.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import Field

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.base import ProfileSpec
from gateway.profiles.scanning import SCANNER_ROLES, ScanningProfile, TraceProfileConfigBase

__all__ = ["BAG_SCANNER", "BagScannerProfile", "BagScannerProfileConfig"]

log = logging.getLogger(__name__)


class BagScannerProfileConfig(TraceProfileConfigBase):
    profile: Literal["bag_scanner"] = Field(
        description="A scanner reading each bag's traceability code on the packing line."
    )
    action: Literal["commission", "reject"] = Field(
        default="commission",
        description="commission: bags on the line (pack.bag); reject: a scanner at the reject "
        "chute, whose codes mark bags rejected (pack.reject) so they are never packed.",
    )
    sku: str = Field(
        default="default",
        min_length=1,
        description="Product (SKU) packed on this line; picks the case packer's pack ratio.",
    )
    repeat_window_ms: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="The same code again within this time is the scanner reading one bag twice "
        "(ignored, not a duplicate); 0 = off (every repeat is a duplicate).",
    )


class BagScannerProfile(ScanningProfile):
    stage = "bag"

    def __init__(self, cfg: BagScannerProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        super().__init__(cfg, tags, tz)
        self.bag_cfg = cfg
        self._last: tuple[str, float] | None = None
        if cfg.action == "reject":
            self.stage = "reject"

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        ts = reading.ts
        codes = self.codes_of(reading)
        noread = self.is_noread(reading)
        if not codes and not noread:
            if reading.errors:
                self.trace.counters.add({"garbage": 1}, ts=ts, batch=self.line.batch)
            return []
        with self.trace.db.transaction():
            if self.bag_cfg.action == "reject":
                return self._rejects(codes, ts)
            return self._commission(codes, noread, reading, ts)

    def _repeat(self, code: str, ts: datetime) -> bool:
        window = self.bag_cfg.repeat_window_ms / 1000
        last, self._last = self._last, (code, ts.timestamp())
        return bool(
            window and last and last[0] == code and 0 <= ts.timestamp() - last[1] <= window
        )  # (a negative gap is the wall clock going back, not a second read of one bag)

    def _commission(
        self, codes: list[str], noread: bool, reading: Reading, ts: datetime
    ) -> list[EventDraft]:
        batch, sku = self.line.batch, self.bag_cfg.sku
        agg, counts = self.trace.agg, {"frames": 1}
        out: list[EventDraft] = []
        if noread:
            counts["noread"] = 1
            agg.push_slot("bag", None, sku=sku, batch=batch, ts=ts)
            raw = reading.values.get("raw")
            out.append(
                EventDraft(
                    "pack.noread", ts, {"stage": "bag", "raw": raw, "sku": sku}, device=self.device
                )
            )
        for raw in codes:
            check = self.check(raw)
            if check.valid and check.code is not None and self._repeat(check.code, ts):
                log.debug("%s: %s read twice within the repeat window", self.device, check.code)
                continue
            counts["read"] = counts.get("read", 0) + 1
            if not check.valid or check.code is None:
                counts["invalid"] = counts.get("invalid", 0) + 1
                agg.push_slot("bag", None, sku=sku, batch=batch, ts=ts)
                out.append(self.invalid_alarm(check, ts))
                continue
            seen = self.trace.codes.see(check.code, "bag", ts, self.device)
            refusal = (
                None if seen.duplicate else agg.commission(check.code, batch=batch, sku=sku, ts=ts)
            )
            if seen.duplicate or refusal is not None:
                counts["duplicate"] = counts.get("duplicate", 0) + 1
                agg.push_slot("bag", None, sku=sku, batch=batch, ts=ts)
                alarm = self.duplicate_alarm(seen, ts)
                if refusal is not None:  # first time at the bag stage: say what it really is
                    alarm.data["detail"] = (
                        f"{refusal.detail}: a bag cannot carry it (a case or pallet label on "
                        "the bag line, or a copied mark); not commissioned (QB/T 5279 8.8)"
                    )
                out.append(alarm)
                continue
            counts["valid"] = counts.get("valid", 0) + 1
            agg.push_slot("bag", check.code, sku=sku, batch=batch, ts=ts)
            data: dict[str, Any] = {"code": check.code, "sku": sku}
            if check.resolver:
                data["resolver"] = check.resolver
            out.append(EventDraft("pack.bag", ts, data, device=self.device))
        self.trace.counters.add(counts, ts=ts, batch=batch)
        return out

    def _rejects(self, codes: list[str], ts: datetime) -> list[EventDraft]:
        out: list[EventDraft] = []
        for raw in codes:
            check = self.check(raw)
            if not check.valid or check.code is None:
                out.append(self.invalid_alarm(check, ts))
                continue
            item = self.trace.agg.reject(check.code, ts)
            data: dict[str, Any] = {
                "code": check.code,
                "reason": "reject_chute",
                "commissioned": item is not None,
            }
            if item is not None and item.parent is not None:
                data["case"] = item.parent
            out.append(EventDraft("pack.reject", ts, data, device=self.device))
        return out


BAG_SCANNER = ProfileSpec(
    name="bag_scanner",
    config_model=BagScannerProfileConfig,
    create=BagScannerProfile,
    roles=SCANNER_ROLES,
    description="Bag scanner: pack.bag per commissioned code, pack.noread, duplicate and "
    "invalid code alarms; at a reject chute, pack.reject with the code.",
)
