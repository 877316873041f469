"""Material feeding (投料) → ``feed.material`` (QB/T 5279-2018 7.2 table 2 row 1: material name,
specification, lot, quantity, operator, feeding point, time; 10.2.3: feeding is a collection node
of the production stage; 10.2.4: tied to the line's batch, which the runtime stamps).

One event per feeding, detected by the device's feeding counter. The other values may arrive in
earlier readings (OPC UA subscriptions report only what changed), so the profile keeps the last
value of each role and reports them when the counter moves. A feeding without a material or a
sane quantity gives ``alarm.device`` naming the tag, never a half-filled record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import Field

from drivers.base import Reading, TagValue
from gateway.events import EventDraft
from gateway.profiles.base import ProfileConfigBase, ProfileSpec, Role

__all__ = ["MATERIAL_FEED", "MaterialFeedProfile", "MaterialFeedProfileConfig"]


class MaterialFeedProfileConfig(ProfileConfigBase):
    profile: Literal["material_feed"] = Field(description="Material feeding records (投料).")
    unit: str = Field(default="kg", description="Unit of the quantity tag.")
    max_quantity: float = Field(
        default=50_000, gt=0, description="Largest sane quantity of one feeding (in `unit`)."
    )


ROLES = (
    Role("count", "feed_count", description="Feeding counter: one event per change."),
    Role("material", "feed_material", description="Name of the material fed."),
    Role("lot", "feed_lot", description="Lot (batch) number of the material."),
    Role("quantity", "feed_qty_kg", description="Quantity fed."),
    Role("point", "feed_point", required=False, description="Feeding point (hopper, doser)."),
    Role("operator", "feed_operator", required=False, description="Who fed it."),
)


class MaterialFeedProfile:
    def __init__(self, cfg: MaterialFeedProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.tags = dict(tags)
        self._last: dict[str, TagValue] = {}
        self._count: TagValue | None = None

    def on_tick(self, now: datetime) -> list[EventDraft]:
        return []

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        for role, tag in self.tags.items():
            if tag in reading.values:
                self._last[role] = reading.values[tag]
        count = reading.values.get(self.tags["count"])
        if count is None:
            return []
        previous, self._count = self._count, count
        if previous is None or count == previous or count == 0:
            return []  # a baseline after (re)start, or nothing fed yet since power-on
        return [self._record(reading.ts, count)]

    def _record(self, ts: datetime, count: TagValue) -> EventDraft:
        material = self._last.get("material")
        quantity = self._last.get("quantity")
        problem = None
        if not isinstance(material, str) or not material.strip():
            problem = (self.tags["material"], "no material name")
        elif isinstance(quantity, bool) or not isinstance(quantity, int | float):
            problem = (self.tags["quantity"], "no quantity")
        elif math.isnan(quantity) or not 0 < quantity <= self.cfg.max_quantity:
            problem = (
                self.tags["quantity"],
                f"quantity {quantity} outside 0..{self.cfg.max_quantity}",
            )
        if problem is not None:
            tag, why = problem
            data: dict[str, Any] = {
                "state": "bad_value",
                "tag": tag,
                "reason": why,
                "detail": f"feeding {count}: {why}; not recorded",
            }
            return EventDraft("alarm.device", ts, data, device=self.device)
        record: dict[str, Any] = {
            "material": str(material).strip(),
            "lot": str(self._last.get("lot") or "") or None,
            "quantity": quantity,
            "unit": self.cfg.unit,
            "point": self._last.get("point"),
            "operator": self._last.get("operator"),
            "count": count,
        }
        return EventDraft("feed.material", ts, record, device=self.device)


MATERIAL_FEED = ProfileSpec(
    name="material_feed",
    config_model=MaterialFeedProfileConfig,
    create=MaterialFeedProfile,
    roles=ROLES,
    description="Material feeding (投料): a feed.material record per feeding.",
)
