"""Safety sieve → ``ccp.sieve`` (QB/T 5279-2018 7.2 table 2 row 4: 安全筛检测, the safety sieve's
checks, are CCP information to collect).

The safety (check) sieve before the packer keeps lumps and foreign bodies out of the packs; a
torn screen lets them through. Records:

* **inspection** — an operator checks the screen on a schedule and enters intact yes/no at the
  panel (the inspection counter advances): ``value`` = intact, ``limits`` =
  ``{"expected": true}``; a broken screen fails.
* **sensor** — where the sieve has a mesh-break detector (a conductive wire woven into the
  screen), its alarm going on is a failed record at once, without waiting for an inspection.
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
from gateway.profiles.records import BOOL_LIMITS, bad_value, bool_verdict, ccp_record, read_bool

__all__ = ["SIEVE", "SieveProfile", "SieveProfileConfig"]


class SieveProfileConfig(InspectionProfileConfig):
    """A safety sieve whose screen is checked on a schedule (and maybe watched by a sensor)."""

    profile: Literal["sieve"] = Field(description="A safety sieve (CCP).")
    aperture_mm: float | None = Field(
        default=None,
        gt=0,
        description="Nominal aperture of the screen, mm; recorded with each check.",
    )


ROLES = (
    Role(
        "inspections",
        "sieve_inspections",
        description="Inspection counter: +1 per screen check entered at the panel.",
    ),
    Role("intact", "sieve_intact", description="True when the last check found the screen intact."),
    Role(
        "broken",
        "sieve_broken",
        required=False,
        description="Mesh-break detector: true while it reports a torn screen.",
    ),
)


class SieveProfile(InspectionProfileBase):
    kind = "sieve"
    label = "safety sieve"

    def __init__(self, cfg: SieveProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        super().__init__(cfg, tags)
        self.aperture_mm = cfg.aperture_mm
        self.broken: bool | None = None  # the sensor's last state

    def _extra(self, **kw: Any) -> dict[str, Any]:
        if self.aperture_mm is not None:
            kw["aperture_mm"] = self.aperture_mm
        return kw

    def inspection(
        self, reading: Reading, number: int, missed: int
    ) -> tuple[list[EventDraft], bool | None]:
        tag = self.tags["intact"]
        intact, why = read_bool(reading, tag)
        if intact is None:
            detail = f"sieve inspection {number}: result unreadable ({why}); no verdict"
            bad = bad_value(reading.ts, self.device, tag, why, detail, inspection=number)
            return [bad], None
        extra = self._extra(check="inspection", inspection=number)
        if missed:
            extra["missed"] = missed
        record = ccp_record(
            self.kind,
            reading.ts,
            self.device,
            value=intact,
            unit=None,
            limits=BOOL_LIMITS,
            verdict=bool_verdict(intact),
            **extra,
        )
        return [record], intact

    def continuous(self, reading: Reading) -> list[EventDraft]:
        tag = self.tags.get("broken")
        if tag is None:
            return []
        broken, why = read_bool(reading, tag)
        if broken is None:
            detail = f"mesh-break detector unreadable ({why})"
            return self.health.bad(reading.ts, tag, "bad_value", str(why), detail)
        out = self.health.ok(reading.ts, tag)
        was, self.broken = self.broken, broken
        if broken and not was:
            record = ccp_record(
                self.kind,
                reading.ts,
                self.device,
                value=False,
                unit=None,
                limits=BOOL_LIMITS,
                verdict="fail",
                **self._extra(check="sensor"),
            )
            out.append(record)
            out.extend(self._failed_alarms([record], self.periodic.last_pass))
        return out

    def failure_text(self, record: EventDraft) -> str:
        if record.data["check"] == "sensor":
            return f"safety sieve {self.device}: mesh-break detector reports a torn screen"
        number = record.data["inspection"]
        return f"safety sieve {self.device}, inspection {number}: screen found broken"


SIEVE = ProfileSpec(
    name="sieve",
    config_model=SieveProfileConfig,
    create=SieveProfile,
    roles=ROLES,
    description="Safety sieve: ccp.sieve per screen check (and when a mesh-break detector "
    "trips); alarm.ccp on a broken screen or a missed check.",
    full_image=True,
)
