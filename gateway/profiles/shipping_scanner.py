"""Outbound, inbound and recall scanners → ``ship.outbound``, ``ship.inbound``, ``recall.scan``.

QB/T 5279-2018 10.3.2: products leaving are scanned and registered (销售出库信息, 7.4 table 5:
出库单号, 往来单位, …); 5.2: a wholesaler scans in and out; 10.6: recalled products are scanned.
A scan of a case or pallet counts for every bag inside it: the event carries the direct children,
the bag count and every bag code (``bag_codes``), known from what the line packed or from the
producer's EPCIS documents a wholesaler imported (docs/wholesale.md); a code of neither is
``level`` unknown, recorded unexpanded. The order and customer (or supplier, or recall id) come
from the config, or from an order barcode scanned before the goods (``order_pattern``, a regular
expression with the named groups ``order`` and optionally ``customer``).

Duplicates: a bag already registered in the same direction raises ``alarm.duplicate_code``
(stage = the direction) naming the earlier order; an outbound code this line never packed raises
``alarm.aggregation`` (not_commissioned), and is registered all the same.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import Field, field_validator

from drivers.base import Reading
from gateway.codes import Sighting
from gateway.events import EventDraft
from gateway.profiles.base import ProfileSpec
from gateway.profiles.scanning import SCANNER_ROLES, ScanningProfile, TraceProfileConfigBase

__all__ = [
    "INBOUND_SCANNER",
    "OUTBOUND_SCANNER",
    "RECALL_SCANNER",
    "InboundScannerProfileConfig",
    "OutboundScannerProfileConfig",
    "RecallScannerProfileConfig",
    "ShippingScannerProfile",
]

log = logging.getLogger(__name__)


class _ShipScanConfigBase(TraceProfileConfigBase):
    order: str | None = Field(
        default=None,
        description="Document number the scans belong to (出库单号 / 入库单号 / recall id) until "
        "an order barcode says otherwise.",
    )
    party: str | None = Field(
        default=None,
        description="The other party (往来单位): customer, supplier or recall authority.",
    )
    order_pattern: str | None = Field(
        default=r"^(?:ORDER|SO|DO|RC):(?P<order>[^;|]+)(?:[;|](?P<customer>.+))?$",
        description="Regular expression for an order barcode (named groups `order` and "
        "optionally `customer`); a scanned code matching it sets the current order. None = "
        "no order barcodes.",
    )

    @field_validator("order_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        if "order" not in rx.groupindex:
            raise ValueError("order_pattern needs a named group (?P<order>…)")
        return v


class OutboundScannerProfileConfig(_ShipScanConfigBase):
    profile: Literal["outbound_scanner"] = Field(
        description="Outbound (sales) scanning: ship.outbound per scanned bag, case or pallet."
    )


class InboundScannerProfileConfig(_ShipScanConfigBase):
    profile: Literal["inbound_scanner"] = Field(
        description="Wholesale inbound scanning (QB/T 5279 5.2): ship.inbound per scan; set "
        "codes.own_enterprise_only to false to accept every producer of Annex A."
    )


class RecallScannerProfileConfig(_ShipScanConfigBase):
    profile: Literal["recall_scanner"] = Field(
        description="Recall scanning (QB/T 5279 10.6): recall.scan per scanned bag, case or "
        "pallet; `order` is the recall id."
    )


_Config = OutboundScannerProfileConfig | InboundScannerProfileConfig | RecallScannerProfileConfig
_DIRECTION = {
    "outbound_scanner": ("outbound", "ship.outbound", "customer"),
    "inbound_scanner": ("inbound", "ship.inbound", "supplier"),
    "recall_scanner": ("recall", "recall.scan", "party"),
}


class ShippingScannerProfile(ScanningProfile):
    def __init__(self, cfg: _Config, tags: Mapping[str, str], tz: tzinfo) -> None:
        super().__init__(cfg, tags, tz)
        self.direction, self.event_type, self.party_key = _DIRECTION[cfg.profile]
        self.stage = self.direction
        self.order = cfg.order
        self.party = cfg.party
        self._order_rx = re.compile(cfg.order_pattern) if cfg.order_pattern else None

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        out: list[EventDraft] = []
        for raw in self.codes_of(reading):
            match = self._order_rx.match(raw) if self._order_rx else None
            if match:
                self.order = match.group("order")
                if match.groupdict().get("customer"):
                    self.party = match.group("customer")
                log.info("%s: order %s (%s)", self.device, self.order, self.party)
                continue
            out.extend(self._scan(raw, reading.ts))
        return out

    def _scan(self, raw: str, ts: datetime) -> list[EventDraft]:
        check = self.check(raw)
        if not check.valid or check.code is None:
            return [self.invalid_alarm(check, ts)]
        if self.direction == "outbound" and (self.order is None or self.party is None):
            return [self._no_order(check.code, ts)]
        res = self.trace.shipping.scan(
            check.code,
            self.direction,
            ref=self.order,
            party=self.party,
            device=self.device,
            ts=ts,
        )
        ref_key = "recall" if self.direction == "recall" else "order"
        data: dict[str, Any] = {
            "code": check.code,
            "level": res.level,
            ref_key: self.order,
            self.party_key: self.party,
            "bags": len(res.bags),
            "children": res.children,
        }
        if res.level in ("case", "pallet") and res.bags:  # expanded (docs/wholesale.md)
            data["bag_codes"] = res.bags
        out = [EventDraft(self.event_type, ts, data, device=self.device)]
        if res.already:
            first_bag, earlier = next(iter(res.already.items()))
            seen = Sighting(check.code, self.direction, len(res.already) + 1, "", None)
            alarm = self.duplicate_alarm(seen, ts, bags=len(res.already), earlier_order=earlier)
            alarm.data["detail"] = (
                f"{len(res.already)} of {len(res.bags)} bag(s) under {check.code} were already "
                f"registered {self.direction} (e.g. {first_bag} on {earlier}): a copied mark "
                "or a repeated scan (QB/T 5279 8.8)"
            )
            out.append(alarm)
        if self.direction == "outbound" and res.level == "unknown":
            detail = (
                f"{check.code} leaves but was never commissioned on this line nor imported "
                "from its producer's EPCIS documents (saltgw import CONFIG epcis)"
            )
            data = {
                "reason": "not_commissioned",
                "level": "unknown",
                "parent": None,
                "children": [check.code],
                "detail": detail,
            }
            out.append(EventDraft("alarm.aggregation", ts, data, device=self.device))
        return out

    def _no_order(self, code: str, ts: datetime) -> EventDraft:
        """An outbound record needs its order and customer (QB/T 5279-2018 7.4 table 4): the
        scan is refused, nothing registered, so scanning the goods again after the order
        barcode records them (before, such a record was made and the bridge quarantined it)."""
        missing = " and ".join(
            n for n, v in (("order", self.order), ("customer", self.party)) if v is None
        )
        detail = (
            f"{code} scanned for outbound without {missing}: scan the order barcode (e.g. "
            "SO:{order}|{customer}) or set order/party on the profile, then scan it again; "
            "not registered (QB/T 5279 table 4)"
        )
        data = {
            "reason": "no_order",
            "level": "unknown",
            "parent": None,
            "children": [code],
            "detail": detail,
        }
        return EventDraft("alarm.aggregation", ts, data, device=self.device)


def _spec(name: str, model: type[_ShipScanConfigBase], description: str) -> ProfileSpec:
    return ProfileSpec(
        name=name,
        config_model=model,
        create=ShippingScannerProfile,
        roles=SCANNER_ROLES,
        description=description,
    )


OUTBOUND_SCANNER = _spec(
    "outbound_scanner",
    OutboundScannerProfileConfig,
    "Outbound scanner: ship.outbound (order, customer) per bag, case or pallet scanned.",
)
INBOUND_SCANNER = _spec(
    "inbound_scanner",
    InboundScannerProfileConfig,
    "Wholesale inbound scanner: ship.inbound per bag, case or pallet scanned.",
)
RECALL_SCANNER = _spec(
    "recall_scanner",
    RecallScannerProfileConfig,
    "Recall scanner: recall.scan per bag, case or pallet scanned.",
)
