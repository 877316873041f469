"""What the periodic-inspection CCPs (magnet rods, safety sieve) have in common.

An operator inspects the CCP on a schedule and enters the result at the station's panel; the
panel counts inspections. Each new count is one inspection record (the first value seen is a
baseline); no inspection within ``inspection_interval_min`` raises ``alarm.ccp`` once per missed
interval. Records older than ``max_reading_age_s`` are not judged (``alarm.device`` stale).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.records import CcpProfileConfig, ccp_alarm
from gateway.profiles.watch import CounterWatch, PeriodicWatch, ReadingAge, TagHealth

__all__ = ["InspectionProfileBase", "InspectionProfileConfig"]


class InspectionProfileConfig(CcpProfileConfig):
    """Settings of a CCP inspected on a schedule."""

    inspection_interval_min: float = Field(
        default=480.0,
        gt=0,
        description="An inspection is due this often (minutes; 480 = once per 8-hour shift); a "
        "miss raises alarm.ccp once per missed interval.",
    )


class InspectionProfileBase:
    """Counter → one inspection record; the schedule → missed-inspection alarms."""

    kind: ClassVar[str]  # ccp.{kind}
    label: ClassVar[str]  # for the operator: "magnet rod", "safety sieve"
    counter_role: ClassVar[str] = "inspections"

    def __init__(self, cfg: InspectionProfileConfig, tags: Mapping[str, str]) -> None:
        self.device = cfg.device
        self.tags = dict(tags)
        self.interval_min = cfg.inspection_interval_min
        self.counter = CounterWatch(cfg.device, tags[self.counter_role])
        self.periodic = PeriodicWatch(timedelta(minutes=cfg.inspection_interval_min))
        self.health = TagHealth(cfg.device)
        self.age = ReadingAge(self.health, tags[self.counter_role], cfg.max_reading_age_s)

    # -- hooks ---------------------------------------------------------------------------------
    def inspection(
        self, reading: Reading, number: int, missed: int
    ) -> tuple[list[EventDraft], bool | None]:
        """Events for one new inspection, and whether it passed (None: unreadable)."""
        raise NotImplementedError

    def continuous(self, reading: Reading) -> list[EventDraft]:
        """Events from values watched on every reading (e.g. a mesh-break sensor)."""
        return []

    # -- the profile protocol ------------------------------------------------------------------
    def on_tick(self, now: datetime) -> list[EventDraft]:
        self.age.tick(now)
        missed = self.periodic.overdue(now)
        if not missed:
            return []
        minutes = self.periodic.minutes_since(now)
        detail = (
            f"{self.label} {self.device}: no inspection recorded for {minutes:g} min "
            f"(due every {self.interval_min:g} min)"
        )
        alarm = ccp_alarm(
            self.kind,
            now,
            self.device,
            check="inspection",
            value=minutes,
            unit="min",
            limits={"lo": None, "hi": self.interval_min},
            detail=detail,
            missed=missed,
        )
        return [alarm]

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        self.periodic.start(reading.ts)
        fresh, out = self.age.check(reading)
        if not fresh:
            return out
        new = self.counter.advance(reading)
        number = self.counter.last
        if new and number is not None:
            last_pass = self.periodic.last_pass
            events, passed = self.inspection(reading, number, new - 1)
            out.extend(events)
            if passed is False:
                out.extend(self._failed_alarms(events, last_pass))
            self.periodic.done(reading.ts, passed=passed)
        out.extend(self.counter.reset_alarms(reading.ts))
        out.extend(self.continuous(reading))
        return out

    def since_text(self, last_pass: datetime | None) -> str:
        if last_pass is None:
            return "since the gateway started watching"
        return f"since the last passed inspection ({last_pass.isoformat(timespec='seconds')})"

    def failure_text(self, record: EventDraft) -> str:
        raise NotImplementedError

    def _failed_alarms(
        self, events: list[EventDraft], last_pass: datetime | None
    ) -> list[EventDraft]:
        out = []
        for rec in events:
            if rec.type != f"ccp.{self.kind}" or rec.data.get("verdict") != "fail":
                continue
            d = rec.data
            since = self.since_text(last_pass)
            detail = f"{self.failure_text(rec)}; hold and re-inspect the product {since}"
            extra: dict[str, Any] = {"inspection": d["inspection"]} if "inspection" in d else {}
            extra["last_pass"] = last_pass.isoformat(timespec="milliseconds") if last_pass else None
            out.append(
                ccp_alarm(
                    self.kind,
                    rec.ts,
                    self.device,
                    check=d["check"],
                    value=d["value"],
                    unit=d["unit"],
                    limits=d["limits"],
                    detail=detail,
                    **extra,
                )
            )
        return out
