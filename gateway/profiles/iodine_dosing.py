"""The dosing source of the iodine profile: one iodine value per interval from the doser's flows.

Each reading while the line runs (salt flow ≥ ``min_salt_flow_kg_h``) adds its salt and KIO3
solution flows to the interval's sums; at the first reading ``record_interval_s`` after the
interval began, the interval closes and gives the iodine content of its *mean* flows
(GB 26878-2011 formula, :func:`gateway.profiles.iodine_limits.iodine_from_dosing`).

What is left out, never judged:

* a reading with a flow missing, NaN or negative (one ``alarm.device`` bad_value per episode);
* a flow that reads exactly the same while the salt totaliser advances ``stale_after_kg`` — a
  frozen transmitter: ``alarm.device`` stale, and the interval in which it is found gets no
  record, as it holds frozen values;
* an interval through which a flow never changed while the totaliser advanced (the same
  fault, found at the interval's end before it is recorded): no record, ``alarm.device`` stale.

A flow of exactly 0 (a flowmeter's low-flow cut-off: the dosing pump stopped) is a measurement,
never stale: a stopped pump must give a failing iodine record, not a device alarm.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.iodine_limits import iodine_from_dosing
from gateway.profiles.records import read_number
from gateway.profiles.watch import FrozenWatch, TagHealth

if TYPE_CHECKING:
    from gateway.profiles.iodine import IodineProfileConfig

__all__ = ["DosingWindow"]

FLOWS = ("salt_flow", "solution_flow")


class DosingWindow:
    def __init__(
        self, cfg: IodineProfileConfig, tags: Mapping[str, str], health: TagHealth
    ) -> None:
        assert cfg.kio3_g_per_l is not None  # the config model requires it for dosing
        self.kio3_g_per_l = cfg.kio3_g_per_l
        self.interval = timedelta(seconds=cfg.record_interval_s)
        self.min_salt = cfg.min_salt_flow_kg_h
        self.stale_after_kg = cfg.stale_after_kg
        self.tags = dict(tags)
        self.health = health
        self.frozen = {role: FrozenWatch(cfg.stale_after_kg) for role in FLOWS}
        self.start: datetime | None = None
        self._reset(None)

    def _reset(self, start: datetime | None) -> None:
        self.start = start
        self.sums = dict.fromkeys(FLOWS, 0.0)
        self.n = 0
        self.tainted = False
        self.totals: list[float] = []  # first and last readable totaliser value in the interval

    def feed(self, reading: Reading, out: list[EventDraft]) -> tuple[float, dict[str, Any]] | None:
        """Add one reading (alarms go to ``out``); an interval's (iodine, details) when the
        reading closes one that can be recorded."""
        result = None
        if self.start is None or reading.ts < self.start:  # none yet, or the clock went back
            self.start = reading.ts
        elif reading.ts - self.start >= self.interval:
            result = self._close(reading.ts, out)
            self._reset(reading.ts)
        flows = self._flows(reading, out)
        if flows is not None and flows["salt_flow"] >= self.min_salt:
            for role in FLOWS:
                self.sums[role] += flows[role]
            self.n += 1
        return result

    def _flows(self, reading: Reading, out: list[EventDraft]) -> dict[str, float] | None:
        ts = reading.ts
        total_tag = self.tags["salt_total"]
        total, why = read_number(reading, total_tag)
        if total is None:
            detail = f"salt totaliser unreadable ({why}): frozen flows cannot be told apart"
            out.extend(self.health.bad(ts, total_tag, "bad_value", str(why), detail))
        else:
            out.extend(self.health.ok(ts, total_tag))
            if self.totals:
                self.totals[1] = total
            else:
                self.totals = [total, total]
        flows: dict[str, float] = {}
        for role in FLOWS:
            tag = self.tags[role]
            value, why = read_number(reading, tag)
            if value is None:
                detail = f"{tag} unusable ({why}): left out of the iodine interval"
                out.extend(self.health.bad(ts, tag, "bad_value", str(why), detail, f"{tag}#bad"))
                continue
            out.extend(self.health.ok(ts, tag, f"{tag}#bad"))
            watch = self.frozen[role]
            changed = watch.update(ts, value, total)
            if watch.stale and value != 0:
                self.tainted = True
                detail = (
                    f"{tag} stuck at {value:g} while the salt totaliser advanced "
                    f"{self.stale_after_kg:g} kg: stale; no iodine record for this interval"
                )
                out.extend(
                    self.health.bad(ts, tag, "stale", "unchanged while the line runs", detail)
                )
                continue
            if changed:
                out.extend(self.health.ok(ts, tag))
            if not self.health.is_bad(tag):
                flows[role] = value
        return flows if len(flows) == len(FLOWS) else None

    def _close(self, ts: datetime, out: list[EventDraft]) -> tuple[float, dict[str, Any]] | None:
        if self.tainted or self.n == 0 or self.start is None:
            return None  # frozen values inside, or the line did not run
        advanced = self.totals[-1] - self.totals[0] if self.totals else 0.0
        unchanged = [
            role
            for role in FLOWS
            if advanced > 0
            and (at := self.frozen[role].changed_at) is not None
            and at <= self.start
            and self.frozen[role].value != 0
        ]
        for role in unchanged:
            tag = self.tags[role]
            detail = (
                f"{tag} unchanged at {self.frozen[role].value:g} through the whole interval while "
                f"the salt totaliser advanced {advanced:g} kg: stale; no iodine record for it"
            )
            out.extend(self.health.bad(ts, tag, "stale", "unchanged over the interval", detail))
        if unchanged:
            return None
        salt = self.sums["salt_flow"] / self.n
        solution = self.sums["solution_flow"] / self.n
        value = iodine_from_dosing(salt, solution, self.kio3_g_per_l)
        extra: dict[str, Any] = {
            "salt_flow_kg_h": round(salt, 1),
            "solution_flow_l_h": round(solution, 3),
            "kio3_g_per_l": self.kio3_g_per_l,
            "interval_s": round((ts - self.start).total_seconds(), 1),
            "samples": self.n,
        }
        return value, extra
