"""Scan-rate KPIs of the line (gateway/kpi), fed by a bag counter of another device.

Attach it to the device that counts the bags produced: the line PLC's bag counter, or the
checkweigher's weighing counter when there is no PLC (role ``count``)::

    - profile: scan_kpi
      device: cw1                 # counts bags; the scanners' figures come from the trace store
      tags: {count: count}
      scan_rate_threshold: 0.98

Each increase of the counter adds to ``produced`` (a counter that goes back is a device restart:
the new value counts from 0). Once a second the live window is sampled and checked: under the
threshold → ``alarm.scan_rate`` (state low), back over → ``alarm.scan_rate`` (state recovered).
The gateway publishes :meth:`ScanKpiProfile.kpi_message` retained on ``…/{line}/kpi``, every
``publish_secs`` (gateway/runtime.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.kpi import DEFAULT_SHIFTS, KpiCalculator, ShiftConfig
from gateway.profiles.base import ProfileConfigBase, ProfileSpec, Role
from gateway.profiles.context import LineContext
from gateway.traceline import TraceLine, open_trace_line

__all__ = ["SCAN_KPI", "ScanKpiProfile", "ScanKpiProfileConfig"]

log = logging.getLogger(__name__)


class ScanKpiProfileConfig(ProfileConfigBase):
    profile: Literal["scan_kpi"] = Field(
        description="Scan-rate and packing KPIs of the line, on the device counting the bags."
    )
    store: Path = Field(
        default=Path("var/trace.db"),
        description="The line's trace store, the same file as the scanner profiles'.",
    )
    scan_rate_threshold: float = Field(
        default=0.98,
        gt=0,
        le=1,
        description="alarm.scan_rate when the live window's scan rate (codes commissioned / "
        "bags produced) is under this.",
    )
    window_secs: float = Field(
        default=60.0, ge=5, le=3600, description="Length of the live window, seconds."
    )
    min_bags: int = Field(
        default=20,
        ge=1,
        description="Bags the window must count before its scan rate is judged.",
    )
    publish_secs: float = Field(
        default=5.0, ge=1, le=3600, description="How often the KPI message is published."
    )
    shifts: list[ShiftConfig] = Field(
        default_factory=lambda: list(DEFAULT_SHIFTS),
        min_length=1,
        description="The shifts (班组) of the line, by local start time.",
    )


ROLES = (Role("count", "count", description="Bags produced: a counter, +1 per bag."),)


class ScanKpiProfile:
    def __init__(self, cfg: ScanKpiProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.tz = tz
        self.count_tag = tags["count"]
        self._published: float | None = None
        self._last: int | None = None
        self._line: LineContext | None = None
        self._trace: TraceLine | None = None
        self._calc: KpiCalculator | None = None

    def bind_line(self, line: LineContext) -> None:
        self._line = line
        self._trace = open_trace_line(self.cfg.store, line.line)
        self._calc = KpiCalculator(
            self._trace.counters,
            shifts=self.cfg.shifts,
            window_secs=self.cfg.window_secs,
            threshold=self.cfg.scan_rate_threshold,
            min_bags=self.cfg.min_bags,
        )

    @property
    def calc(self) -> KpiCalculator:
        if self._calc is None:
            raise RuntimeError(f"profile for {self.device} used before bind_line()")
        return self._calc

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        value = reading.values.get(self.count_tag)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return []
        count = int(value)
        last, self._last = self._last, count
        if last is None or count == last:
            return []  # the first look after a (re)start is a baseline
        if count < last:
            log.warning("%s: bag counter went back (%d → %d)", self.device, last, count)
            delta = count
        else:
            delta = count - last
        assert self._line is not None
        self.calc.counters.add({"produced": delta}, ts=reading.ts, batch=self._line.batch)
        return []

    def on_tick(self, now: datetime) -> list[EventDraft]:
        self.calc.sample(now)
        alarm = self.calc.check()
        if alarm is None:
            return []
        return [EventDraft("alarm.scan_rate", now, alarm, device=None)]

    def kpi_snapshot(self, now: datetime) -> dict[str, Any]:
        """The KPIs now (gateway/kpi/calculator.py)."""
        batch = self._line.batch if self._line is not None else None
        return self.calc.snapshot(now, batch)

    def kpi_message(self, now: datetime) -> dict[str, Any] | None:
        """The snapshot when ``publish_secs`` have passed since the last one, else None."""
        t = now.timestamp()
        since = None if self._published is None else t - self._published
        if since is not None and 0 <= since < self.cfg.publish_secs - 0.05:
            return None  # (since < 0: the wall clock went back; publish, start over from now)
        self._published = t
        return self.kpi_snapshot(now)


SCAN_KPI = ProfileSpec(
    name="scan_kpi",
    config_model=ScanKpiProfileConfig,
    create=ScanKpiProfile,
    roles=ROLES,
    description="Scan rate, no-read, duplicate and aggregation right-first-time KPIs per line, "
    "shift and batch (retained on …/kpi); alarm.scan_rate under the threshold.",
)
