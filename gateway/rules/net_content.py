"""Checkweigher → ``ccp.net_content`` (QB/T 5279-2018 7.2 table 2 row 4: net content is a
critical control point whose checks must be recorded).

One event per weighing, detected by the device's weighing counter; the verdict compares the net
weight with the limits (default: nominal − tolerable negative deviation, JJF 1070-2005).
A failing verdict also raises ``alarm.ccp``; a bag the device rejected gives ``pack.reject``.
A weighing whose weight could not be read gives ``alarm.device``, never a verdict.
"""

from __future__ import annotations

import logging
from typing import Any

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.rules.models import NetContentRuleConfig
from gateway.rules.tolerance import lower_limit_g

__all__ = ["NetContentRule"]

log = logging.getLogger(__name__)


class NetContentRule:
    def __init__(self, cfg: NetContentRuleConfig) -> None:
        self.cfg = cfg
        self.device = cfg.device
        if cfg.limits is not None:
            self.lo, self.hi = cfg.limits.lo, cfg.limits.hi
        else:
            self.lo, self.hi = lower_limit_g(cfg.nominal_g), None
        self._last_mark: Any = None  # last counter (or weight) seen

    def _limits(self) -> dict[str, float | None]:
        return {"lo": self.lo, "hi": self.hi}

    def _why(self, value: float) -> str:
        if self.lo is not None and value < self.lo:
            side = f"below the lower limit {self.lo} g"
        else:
            side = f"above the upper limit {self.hi} g"
        return f"net content {value} g {side} (nominal {self.cfg.nominal_g:g} g)"

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        cfg = self.cfg
        mark_tag = cfg.counter_tag or cfg.weight_tag
        if mark_tag not in reading.values:
            return []  # unreadable counter: reported by the runtime as a device error
        mark = reading.values[mark_tag]
        previous, self._last_mark = self._last_mark, mark
        if previous is None or mark == previous:
            return []  # first look after (re)start is a baseline, not a new weighing
        missed = 0
        if cfg.counter_tag and isinstance(mark, int) and isinstance(previous, int):
            if mark > previous + 1:
                missed = mark - previous - 1
            elif mark < previous:
                log.warning("%s: weighing counter went back (%s → %s)", self.device, previous, mark)
        if cfg.weight_tag in reading.errors or cfg.weight_tag not in reading.values:
            why = reading.errors.get(cfg.weight_tag, "missing")
            return [
                EventDraft(
                    "alarm.device",
                    reading.ts,
                    {
                        "state": "bad_value",
                        "tag": cfg.weight_tag,
                        "reason": why,
                        "count": mark if cfg.counter_tag else None,
                        "detail": f"weighing {mark}: net weight unreadable ({why}); no verdict",
                    },
                    device=self.device,
                )
            ]
        weight = reading.values[cfg.weight_tag]
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return []
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
            "nominal": cfg.nominal_g,
        }
        if cfg.counter_tag:
            data["count"] = mark
            if missed:
                data["missed"] = missed
        out = [EventDraft("ccp.net_content", reading.ts, data, device=self.device)]
        if fail:
            out.append(
                EventDraft(
                    "alarm.ccp",
                    reading.ts,
                    {
                        "ccp": "net_content",
                        "value": value,
                        "unit": "g",
                        "limits": self._limits(),
                        "verdict": "fail",
                        "detail": self._why(value),
                    },
                    device=self.device,
                )
            )
        if cfg.reject_tag and reading.values.get(cfg.reject_tag) is True:
            out.append(
                EventDraft(
                    "pack.reject",
                    reading.ts,
                    {
                        "reason": "net_content",
                        "value": value,
                        "unit": "g",
                        "count": data.get("count"),
                    },
                    device=self.device,
                )
            )
        return out
