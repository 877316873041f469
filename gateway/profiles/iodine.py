"""Iodizing → ``ccp.iodine`` (QB/T 5279-2018 10.2.3: iodizing, 加碘, is a collection node of
the production stage; limits by GB 26878-2011, see :mod:`gateway.profiles.iodine_limits`).

The iodine content in mg/kg comes from one of two sources (``source:``):

* ``analyser`` — an online analyser (or the lab's result entered at the doser's panel): one
  record per new sample. ``sampling`` says what a new sample is: ``counter`` — the device's
  sample counter advanced (role ``samples``); ``change`` — the value moved by more than
  ``change_tolerance_mg_kg`` from the last sample (an analyser that exposes only its value);
  ``periodic`` — every ``sample_every_s`` while the line runs (salt flow ≥
  ``min_salt_flow_kg_h`` when a ``salt_flow`` tag is bound, else while readings arrive)
  (:mod:`gateway.profiles.sampling`). A result that stays exactly the same over
  ``stale_after_samples`` new samples is stale (counter, periodic); no new sample within
  ``max_sample_age_s`` is stale too (periodic: while the line runs).
* ``dosing`` — computed from the doser's flows (GB 26878 formula in ``iodine_limits``): one
  record per ``record_interval_s`` from the mean salt and solution flows of the readings in
  that interval while the line ran (salt flow ≥ ``min_salt_flow_kg_h``). A flow that stays
  exactly the same while the salt totaliser advances ``stale_after_kg`` is stale, and the
  interval it falls in gets no record.

A failed verdict raises ``alarm.ccp``; an unusable value raises ``alarm.device`` and never gives
a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.base import ProfileSpec, Role
from gateway.profiles.checkweigher import LimitsConfig
from gateway.profiles.iodine_dosing import DosingWindow
from gateway.profiles.iodine_limits import iodine_limits
from gateway.profiles.records import (
    CcpProfileConfig,
    bad_value,
    ccp_alarm,
    ccp_record,
    read_number,
    verdict_in,
)
from gateway.profiles.sampling import ChangeSampler, PeriodicSampler
from gateway.profiles.watch import CounterWatch, FrozenWatch, ReadingAge, TagHealth

__all__ = ["IODINE", "IodineProfile", "IodineProfileConfig"]

KIND = "iodine"
ANALYSER_ROLES = ("iodine", "samples")
DOSING_ROLES = ("salt_flow", "solution_flow", "salt_total")


class IodineProfileConfig(CcpProfileConfig):
    """Iodizing: iodine content from an analyser or from the doser's flows."""

    profile: Literal["iodine"] = Field(description="Iodizing (CCP).")
    target_mg_kg: Literal[20, 25, 30] = Field(
        description="The province's selected iodine level, mg/kg (GB 26878-2011 3.3 table 1): "
        "limits 20 → 14~26, 25 → 18~33, 30 → 21~39."
    )
    limits: LimitsConfig | None = Field(
        default=None,
        description="Override of the limits in mg/kg; by default GB 26878-2011 table 1.",
    )
    source: Literal["dosing", "analyser"] = Field(
        default="dosing",
        description="dosing: compute from the salt and KIO3 solution flows (roles salt_flow, "
        "solution_flow, salt_total); analyser: read the result (roles iodine, samples).",
    )
    kio3_g_per_l: float | None = Field(
        default=None,
        gt=0,
        le=500,
        description="dosing: potassium iodate (KIO3) in the dosing solution, g/L.",
    )
    record_interval_s: float = Field(
        default=60.0, ge=1, description="dosing: one ccp.iodine record per this many seconds."
    )
    min_salt_flow_kg_h: float = Field(
        default=500.0,
        ge=0,
        description="dosing: below this salt flow (kg/h) the line is stopped: not recorded.",
    )
    stale_after_kg: float = Field(
        default=200.0,
        gt=0,
        description="dosing: a flow reading exactly the same while the salt totaliser advances "
        "this many kg is stale.",
    )
    stale_after_samples: int = Field(
        default=3,
        ge=1,
        description="analyser: a result exactly the same over this many new samples is stale.",
    )
    max_sample_age_s: float = Field(
        default=1800.0,
        gt=0,
        description="analyser: no new sample for this many seconds is stale (alarm.device).",
    )
    sampling: Literal["counter", "change", "periodic"] = Field(
        default="counter",
        description="analyser: what a new sample is. counter: the sample counter (role "
        "samples) advanced; change: the value moved by more than change_tolerance_mg_kg from "
        "the last sample; periodic: every sample_every_s while the line runs (docs/profiles.md).",
    )
    change_tolerance_mg_kg: float = Field(
        default=0.0,
        ge=0,
        description="analyser, sampling change: a move of more than this from the last sample "
        "is a new sample (0: any change).",
    )
    sample_every_s: float = Field(
        default=60.0, ge=1, description="analyser, sampling periodic: one sample this often."
    )

    @model_validator(mode="after")
    def _dosing_needs_concentration(self) -> IodineProfileConfig:
        if self.source == "dosing" and self.kio3_g_per_l is None:
            raise ValueError("source dosing needs kio3_g_per_l (KIO3 in the solution, g/L)")
        return self


ROLES = (
    Role("iodine", "iodine_mg_kg", False, "analyser: iodine content of the last sample, mg/kg."),
    Role("samples", "sample_count", False, "analyser: sample counter, +1 per new result."),
    Role("salt_flow", "salt_flow_kg_h", False, "dosing: salt flow to the doser, kg/h."),
    Role("solution_flow", "kio3_flow_l_h", False, "dosing: KIO3 solution flow, L/h (measured)."),
    Role("salt_total", "salt_total_kg", False, "dosing: salt totaliser, kg (shows the line runs)."),
)


def _required_roles(entry: Mapping[str, Any]) -> tuple[str, ...]:
    if entry.get("source") != "analyser":
        return DOSING_ROLES
    if entry.get("sampling", "counter") == "counter":
        return ANALYSER_ROLES
    return ("iodine",)  # change / periodic: the value alone


class IodineProfile:
    def __init__(self, cfg: IodineProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        self.cfg = cfg
        self.device = cfg.device
        missing = [r for r in _required_roles(cfg.model_dump()) if r not in tags]
        if missing:
            raise ValueError(f"iodine profile ({cfg.source}) has no tag for {missing}")
        self.tags = dict(tags)
        if cfg.limits is not None:
            self.lo, self.hi = cfg.limits.lo, cfg.limits.hi
        else:
            self.lo, self.hi = iodine_limits(cfg.target_mg_kg)
        self.health = TagHealth(cfg.device)
        main = tags["iodine"] if cfg.source == "analyser" else tags["salt_flow"]
        self.age = ReadingAge(self.health, main, cfg.max_reading_age_s)
        self.samples = CounterWatch(cfg.device, tags.get("samples", "sample_count"))
        self.changes = ChangeSampler(tags.get("iodine", ""), cfg.change_tolerance_mg_kg)
        self.periodic = PeriodicSampler(timedelta(seconds=cfg.sample_every_s))
        self.frozen = FrozenWatch(cfg.stale_after_samples)
        self.last_sample: datetime | None = None
        self.stopped = False  # periodic: the line stands (no samples due, none overdue)
        self.window = DosingWindow(cfg, self.tags, self.health) if cfg.source == "dosing" else None

    # -- the profile protocol ------------------------------------------------------------------
    def on_tick(self, now: datetime) -> list[EventDraft]:
        self.age.tick(now)
        if self.window is not None:
            return []
        if self.last_sample is None or now < self.last_sample or self.stopped:
            self.last_sample = now  # none yet, the clock went back, or the line stands
        age = (now - self.last_sample).total_seconds()
        if age <= self.cfg.max_sample_age_s:
            return []
        tag = self.tags["iodine"]
        detail = (
            f"no new iodine result for {age:.0f} s (max {self.cfg.max_sample_age_s:g} s); "
            "no verdict until the analyser reports again"
        )
        return self.health.bad(now, tag, "stale", "no new sample", detail, key="<sample age>")

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        fresh, out = self.age.check(reading)
        if not fresh:
            return out
        if self.window is not None:
            alarms: list[EventDraft] = []
            result = self.window.feed(reading, alarms)
            if result is not None:  # the interval this reading closed, before the reading's own
                value, extra = result
                out.extend(self._record(reading.ts, value, source="dosing", **extra))
            return [*out, *alarms]
        sampling = self.cfg.sampling
        if sampling == "counter":
            new = self.samples.advance(reading)
            if new:
                out.extend(self._sample(reading, new, self.samples.last))
            out.extend(self.samples.reset_alarms(reading.ts))
        elif sampling == "change":
            if self.changes.take(reading):
                out.extend(self._sample(reading, 1, self.changes.count))
        else:
            self.stopped = not self._running(reading)
            if self.periodic.take(reading.ts, not self.stopped):
                out.extend(self._sample(reading, 1, self.periodic.count))
        return out

    # -- analyser --------------------------------------------------------------------------------
    def _running(self, reading: Reading) -> bool:
        """periodic: the line runs — salt flow at least min_salt_flow_kg_h when a salt_flow
        tag is bound (unreadable: not known to run), else whenever the device is read."""
        tag = self.tags.get("salt_flow")
        if tag is None:
            return True
        flow, _ = read_number(reading, tag)
        return flow is not None and flow >= self.cfg.min_salt_flow_kg_h

    def _sample(self, reading: Reading, new: int, number: int | None) -> list[EventDraft]:
        self.last_sample = reading.ts
        tag = self.tags["iodine"]
        out = self.health.ok(reading.ts, tag, key="<sample age>")
        value, why = read_number(reading, tag)
        if value is None:
            detail = f"iodine sample {number}: result unreadable ({why}); no verdict"
            bad = bad_value(reading.ts, self.device, tag, why, detail, sample=number)
            return [*out, bad]
        self.frozen.update(reading.ts, value, float(number or 0))
        if self.frozen.stale:
            detail = (
                f"iodine result {value:g} mg/kg unchanged over {self.cfg.stale_after_samples} "
                f"new samples (now sample {number}): the analyser looks hung; no verdict"
            )
            return [*out, *self.health.bad(reading.ts, tag, "stale", "unchanged", detail)]
        out.extend(self.health.ok(reading.ts, tag))
        extra: dict[str, Any] = {"sample": number}
        if self.cfg.sampling != "counter":
            extra["sampling"] = self.cfg.sampling
        if new > 1:
            extra["missed"] = new - 1
        out.extend(self._record(reading.ts, value, source="analyser", **extra))
        return out

    # -- both --------------------------------------------------------------------------------------
    def _limits(self) -> dict[str, float | None]:
        return {"lo": self.lo, "hi": self.hi}

    def _record(self, ts: datetime, raw: float, *, source: str, **extra: Any) -> list[EventDraft]:
        value = round(raw, 2)
        verdict = verdict_in(value, self.lo, self.hi)
        common: dict[str, Any] = {"source": source, "target_mg_kg": self.cfg.target_mg_kg}
        record = ccp_record(
            KIND,
            ts,
            self.device,
            value=value,
            unit="mg/kg",
            limits=self._limits(),
            verdict=verdict,
            **common,
            **extra,
        )
        if verdict == "pass":
            return [record]
        if self.lo is not None and value < self.lo:
            side = f"below the lower limit {self.lo:g} mg/kg"
        else:
            side = f"above the upper limit {self.hi:g} mg/kg"
        basis = (
            "configured limits"
            if self.cfg.limits is not None
            else f"GB 26878-2011 table 1, level {self.cfg.target_mg_kg} mg/kg"
        )
        detail = (
            f"iodizing {self.device}: iodine {value:g} mg/kg {side} ({basis}); check the doser "
            "and hold the salt iodized meanwhile"
        )
        alarm = ccp_alarm(
            KIND,
            ts,
            self.device,
            check=source,
            value=value,
            unit="mg/kg",
            limits=self._limits(),
            detail=detail,
            **common,
        )
        return [record, alarm]


IODINE = ProfileSpec(
    name="iodine",
    config_model=IodineProfileConfig,
    create=IodineProfile,
    roles=ROLES,
    description="Iodizing: ccp.iodine per analyser sample or per dosing interval (computed from "
    "the salt and KIO3 solution flows), limits by GB 26878-2011; alarm.ccp out of limits.",
    required_for=_required_roles,
    full_image=True,
)
