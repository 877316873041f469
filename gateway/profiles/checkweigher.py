"""Checkweigher → ``ccp.net_content`` (QB/T 5279-2018 7.2 table 2 row 4, 10.2.3: net content
is a critical control point whose checks must be recorded).

One event per weighing, detected by the device's weighing counter; the verdict compares the net
weight with the limits (default: nominal − tolerable negative deviation, JJF 1070-2005).
A failing verdict also raises ``alarm.ccp``; a bag the device rejected gives ``pack.reject``.
A weighing whose weight could not be read gives ``alarm.device``, never a verdict. A counter
that goes back (a reset, also one while the gateway was down) gives ``alarm.device`` with state
``counter_reset`` (``from``, ``to``, ``missed``) and counting resumes from the new value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.base import ProfileConfigBase, ProfileSpec, Role
from gateway.profiles.tolerance import lower_limit_g

__all__ = ["CHECKWEIGHER", "CheckweigherProfile", "CheckweigherProfileConfig", "LimitsConfig"]

log = logging.getLogger(__name__)


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    lo: float | None = Field(default=None, description="Lowest acceptable value (inclusive).")
    hi: float | None = Field(default=None, description="Highest acceptable value (inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> LimitsConfig:
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise ValueError(f"lo ({self.lo}) is above hi ({self.hi})")
        return self


class CheckweigherProfileConfig(ProfileConfigBase):
    profile: Literal["checkweigher"] = Field(description="A checkweigher (net content CCP).")
    nominal_g: float = Field(gt=0, le=50_000, description="Nominal net content in grams.")
    limits: LimitsConfig | None = Field(
        default=None,
        description="Override of the limits in grams; by default lo = nominal − tolerable "
        "negative deviation (JJF 1070-2005 table 3), hi unset.",
    )


ROLES = (
    Role("weight", "weight_g", description="Net weight of the last bag, in grams."),
    Role("count", "count", description="Weighing counter: one event per change."),
    Role(
        "rejected",
        "rejected",
        required=False,
        description="True when the device rejected the last bag (→ pack.reject).",
    ),
)


class CheckweigherProfile:
    def __init__(self, cfg: CheckweigherProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.weight_tag = tags["weight"]
        self.count_tag = tags["count"]
        #: a reading must be of one weighing: the driver keeps it to one counter value
        #: (Modbus ``snapshot``; gateway/runtime.py gives the device this default)
        self.snapshot_counter = self.count_tag
        self.reject_tag = tags.get("rejected")
        if cfg.limits is not None:
            self.lo, self.hi = cfg.limits.lo, cfg.limits.hi
        else:
            self.lo, self.hi = lower_limit_g(cfg.nominal_g), None
        self._last_count: Any = None
        self._cursor = f"checkweigher:{self.device}:count"
        self._resumed: int | None = None  # the counter of the last accepted weighing

    def resume(self, cursors: Mapping[str, int]) -> None:
        """The weighing counter of the last event accepted before a restart: weighings the
        device made while the gateway was down are then counted (``missed``), not lost."""
        self._resumed = cursors.get(self._cursor)

    def _limits(self) -> dict[str, float | None]:
        return {"lo": self.lo, "hi": self.hi}

    def _why(self, value: float) -> str:
        if self.lo is not None and value < self.lo:
            side = f"below the lower limit {self.lo} g"
        else:
            side = f"above the upper limit {self.hi} g"
        return f"net content {value} g {side} (nominal {self.cfg.nominal_g:g} g)"

    def on_tick(self, now: datetime) -> list[EventDraft]:
        return []

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        if self.count_tag not in reading.values:
            return []  # unreadable counter: reported by the runtime as a device error
        count = reading.values[self.count_tag]
        previous, self._last_count = self._last_count, count
        reset_from: int | None = None
        if previous is None and isinstance(count, int) and self._resumed is not None:
            if self._resumed < count:  # weighed while we were down: this one and the missed
                previous = self._resumed
            elif self._resumed > count:  # reset while we were down
                reset_from = self._resumed
            self._resumed = None
        if isinstance(count, int) and isinstance(previous, int) and count < previous:
            reset_from = previous
        if reset_from is not None and isinstance(count, int):
            return self._reset(reading, reset_from, count)
        if previous is None or count == previous:
            return []  # first look after a fresh start is a baseline, not a new weighing
        missed = 0
        if isinstance(count, int) and isinstance(previous, int) and count > previous + 1:
            missed = count - previous - 1
        return self._weighing(reading, count, missed)

    def _reset(self, reading: Reading, before: int, count: int) -> list[EventDraft]:
        """The weighing counter went back (``before`` → ``count``): the device was reset.

        Weighings after ``before`` and before the reset are unknowable (only their absence
        is); weighings 1 … ``count`` − 1 after the reset happened unseen: missed. Weighing
        ``count`` itself is recorded (the registers hold it), with ``missed``; the counter
        resumes from it."""
        missed = max(0, count - 1)
        log.warning(
            "%s: weighing counter went back from %d to %d (device reset): %d weighings since "
            "the reset missed, those before it after %d unknown",
            self.device, before, count, missed, before,
        )  # fmt: skip
        detail = (
            f"weighing counter went back from {before} to {count}: the checkweigher was reset. "
            f"Weighings after {before} until the reset are unknown; "
            + (
                f"weighings 1-{count - 1} after it were not recorded ({missed} missed)"
                if missed
                else "none missed after it"
            )
            + "; counting resumes from "
            + str(count)
        )
        alarm = {
            "state": "counter_reset",
            "tag": self.count_tag,
            "reason": f"counter went back from {before} to {count}",
            "from": before,
            "to": count,
            "missed": missed,
            "detail": detail,
        }
        # with no weighing to record (reset to 0), the alarm carries the journal cursor
        cursor = (self._cursor, count) if count == 0 else None
        out = [EventDraft("alarm.device", reading.ts, alarm, device=self.device, cursor=cursor)]
        if count >= 1:
            out.extend(self._weighing(reading, count, missed))
        return out

    def _weighing(self, reading: Reading, count: Any, missed: int) -> list[EventDraft]:
        """The events of one new weighing ``count`` (``missed``: unseen ones just before)."""
        # the journal keeps the counter with the event: a restart resumes from it (resume())
        cursor = (self._cursor, count) if isinstance(count, int) else None
        weight = reading.values.get(self.weight_tag)
        if weight is None or isinstance(weight, bool) or not isinstance(weight, int | float):
            why = reading.errors.get(self.weight_tag, "missing")
            detail = f"weighing {count}: net weight unreadable ({why}); no verdict"
            bad = {
                "state": "bad_value",
                "tag": self.weight_tag,
                "reason": why,
                "count": count,
                "detail": detail,
            }
            return [EventDraft("alarm.device", reading.ts, bad, device=self.device, cursor=cursor)]
        value = round(float(weight), 2)
        fail = (self.lo is not None and value < self.lo) or (
            self.hi is not None and value > self.hi
        )
        verdict = "fail" if fail else "pass"
        data: dict[str, Any] = {
            "value": value,
            "unit": "g",
            "limits": self._limits(),
            "verdict": verdict,
            "nominal": self.cfg.nominal_g,
            "count": count,
        }
        if missed:
            data["missed"] = missed
        out = [EventDraft("ccp.net_content", reading.ts, data, device=self.device, cursor=cursor)]
        if fail:
            alarm = {
                "ccp": "net_content",
                "check": "weighing",
                "count": count,
                "value": value,
                "unit": "g",
                "limits": self._limits(),
                "verdict": "fail",
                "detail": self._why(value),
            }
            out.append(EventDraft("alarm.ccp", reading.ts, alarm, device=self.device))
        if self.reject_tag and reading.values.get(self.reject_tag) is True:
            reject = {"reason": "net_content", "value": value, "unit": "g", "count": count}
            out.append(EventDraft("pack.reject", reading.ts, reject, device=self.device))
        return out


CHECKWEIGHER = ProfileSpec(
    name="checkweigher",
    config_model=CheckweigherProfileConfig,
    create=CheckweigherProfile,
    roles=ROLES,
    description="Checkweigher: a ccp.net_content event per weighing, pack.reject on rejects.",
    full_image=True,
)
