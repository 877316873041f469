"""Magnet rods → ``ccp.magnet_rod`` (QB/T 5279-2018 7.2 table 2 row 4: 磁棒的检测记录, the magnet
rods' inspection records, are CCP information to collect).

The magnetic grate in the salt stream holds back tramp iron. On a schedule an operator pulls the
rods, cleans them, weighs the iron they caught and measures their surface flux density with a
gaussmeter, and enters both at the inspection panel. Each inspection is one record: ``value`` is
the weakest rod's strength in gauss (1 mT = 10 Gs: bind an mT register with ``scale: 10``),
``limits.lo`` the configured minimum, ``iron_g`` the iron caught. A rod below the minimum fails
(it must be replaced, and the product since the last passed inspection re-inspected).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, Literal

from pydantic import Field

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.base import ProfileSpec, Role
from gateway.profiles.inspection import InspectionProfileBase, InspectionProfileConfig
from gateway.profiles.records import bad_value, ccp_record, read_number, verdict_in

__all__ = ["MAGNET_ROD", "MagnetRodProfile", "MagnetRodProfileConfig"]


class MagnetRodProfileConfig(InspectionProfileConfig):
    """Magnet rods (magnetic grate) inspected and cleaned on a schedule."""

    profile: Literal["magnet_rod"] = Field(description="Magnet rods (CCP).")
    min_strength_gs: float = Field(
        default=8000.0,
        gt=0,
        le=20000,
        description="Lowest acceptable surface flux density of a rod, gauss (1 mT = 10 Gs); "
        "below it the inspection fails and the rod must be replaced.",
    )


ROLES = (
    Role(
        "inspections",
        "rod_inspections",
        description="Inspection counter: +1 per inspection entered at the panel.",
    ),
    Role(
        "strength",
        "rod_strength_gs",
        description="Surface flux density of the weakest rod at the last inspection, gauss.",
    ),
    Role(
        "iron",
        "rod_iron_g",
        required=False,
        description="Iron caught on the rods since the previous cleaning, grams.",
    ),
)


class MagnetRodProfile(InspectionProfileBase):
    kind = "magnet_rod"
    label = "magnet rods"

    def __init__(self, cfg: MagnetRodProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        super().__init__(cfg, tags)
        self.min_gs = cfg.min_strength_gs

    def inspection(
        self, reading: Reading, number: int, missed: int
    ) -> tuple[list[EventDraft], bool | None]:
        out: list[EventDraft] = []
        tag = self.tags["strength"]
        strength, why = read_number(reading, tag)
        if strength is None:
            detail = f"magnet rod inspection {number}: strength unreadable ({why}); no verdict"
            bad = bad_value(reading.ts, self.device, tag, why, detail, inspection=number)
            return [bad], None
        extra: dict[str, Any] = {"check": "inspection", "inspection": number}
        iron_tag = self.tags.get("iron")
        if iron_tag is not None:
            iron, why = read_number(reading, iron_tag)
            if iron is None:
                detail = f"magnet rod inspection {number}: captured iron unreadable ({why})"
                out.append(
                    bad_value(reading.ts, self.device, iron_tag, why, detail, inspection=number)
                )
            else:
                extra["iron_g"] = round(iron, 2)
        if missed:
            extra["missed"] = missed
        value = round(strength, 1)
        verdict = verdict_in(value, self.min_gs, None)
        record = ccp_record(
            self.kind,
            reading.ts,
            self.device,
            value=value,
            unit="Gs",
            limits={"lo": self.min_gs, "hi": None},
            verdict=verdict,
            **extra,
        )
        return [record, *out], verdict == "pass"

    def failure_text(self, record: EventDraft) -> str:
        d = record.data
        return (
            f"magnet rods {self.device}, inspection {d['inspection']}: strength {d['value']:g} Gs "
            f"below the minimum {self.min_gs:g} Gs; replace the rod"
        )


MAGNET_ROD = ProfileSpec(
    name="magnet_rod",
    config_model=MagnetRodProfileConfig,
    create=MagnetRodProfile,
    roles=ROLES,
    description="Magnet rods: ccp.magnet_rod per inspection (strength against a minimum, iron "
    "caught); alarm.ccp on a weak rod or a missed inspection.",
    full_image=True,
)
