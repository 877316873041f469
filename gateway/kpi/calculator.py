"""The line's scan and packing KPIs (the industry's two complaints, 2023 training speech part 三:
low, uneven scan rates and inaccurate bag/case/pallet binding).

    scan_rate        codes commissioned / bags produced (the bag counter of another device)
    read_rate        codes read / bag scanner triggers (frames)
    noread_rate      no-reads / bag scanner triggers
    duplicate_rate   duplicate codes / codes read
    invalid_rate     invalid codes / codes read
    aggregation_rft  cases and pallets bound full at the first attempt / attempts

per scope: ``line`` (today, since local midnight), ``shift`` (the current shift) and ``batch``
(the current batch), plus a live ``window`` of the last ``window_secs`` from in-memory totals,
which drives ``alarm.scan_rate`` (raised once when the window's scan rate drops under the
threshold, once more when it is back).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, time
from typing import Any

from gateway.kpi.counters import KpiCounters
from gateway.kpi.shifts import ShiftConfig, current_shift

__all__ = ["KpiCalculator", "rates"]


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den > 0 else None


def rates(t: dict[str, int]) -> dict[str, Any]:
    """The KPIs of a set of counts (None where the denominator is 0)."""
    attempts = t["case_attempts"] + t["pallet_attempts"]
    return {
        "scan_rate": _ratio(t["valid"], t["produced"]),
        "read_rate": _ratio(t["frames"] - t["noread"], t["frames"]),
        "noread_rate": _ratio(t["noread"], t["frames"]),
        "duplicate_rate": _ratio(t["duplicate"], t["read"]),
        "invalid_rate": _ratio(t["invalid"], t["read"]),
        "aggregation_rft": _ratio(t["case_rft"] + t["pallet_rft"], attempts),
        "counts": dict(t),
    }


class KpiCalculator:
    def __init__(
        self,
        counters: KpiCounters,
        *,
        shifts: list[ShiftConfig],
        window_secs: float,
        threshold: float,
        min_bags: int,
    ) -> None:
        self.counters = counters
        self.shifts = shifts
        self.window_secs = window_secs
        self.threshold = threshold
        self.min_bags = min_bags
        self._samples: deque[tuple[float, int, int, int]] = deque()
        self.low = False  # the window's scan rate is under the threshold (alarm raised)

    def sample(self, now: datetime) -> None:
        """Remember the live totals now (call about once a second)."""
        live = self.counters.live
        t = now.timestamp()
        if self._samples and t < self._samples[-1][0]:  # the wall clock went back: start over
            self._samples.clear()
        self._samples.append((t, live["produced"], live["valid"], live["read"]))
        while self._samples and self._samples[0][0] < t - self.window_secs:
            self._samples.popleft()

    def window(self) -> dict[str, Any]:
        """Figures over the samples of the last ``window_secs``."""
        if len(self._samples) < 2:
            return {"secs": self.window_secs, "produced": 0, "valid": 0, "scan_rate": None}
        t0, p0, v0, _ = self._samples[0]
        t1, p1, v1, _ = self._samples[-1]
        produced, valid = p1 - p0, v1 - v0
        return {
            "secs": round(t1 - t0, 1),
            "produced": produced,
            "valid": valid,
            "scan_rate": _ratio(valid, produced),
        }

    def check(self) -> dict[str, Any] | None:
        """alarm.scan_rate data when the window crosses the threshold, else None."""
        w = self.window()
        rate = w["scan_rate"]
        if rate is None or w["produced"] < self.min_bags:
            return None
        if not self.low and rate < self.threshold:
            self.low = True
            state = "low"
            detail = (
                f"scan rate {rate:.1%} over the last {w['secs']:g} s is under "
                f"{self.threshold:.1%} ({w['valid']} codes for {w['produced']} bags)"
            )
        elif self.low and rate >= self.threshold:
            self.low = False
            state = "recovered"
            detail = f"scan rate back to {rate:.1%} (threshold {self.threshold:.1%})"
        else:
            return None
        return {
            "state": state,
            "scan_rate": rate,
            "threshold": self.threshold,
            "window_secs": w["secs"],
            "produced": w["produced"],
            "valid": w["valid"],
            "detail": detail,
        }

    def snapshot(self, now: datetime, batch: str | None) -> dict[str, Any]:
        """The retained KPI message: per line (today), shift and batch, and the live window."""
        shift_id, shift_start = current_shift(self.shifts, now)
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        scopes: dict[str, Any] = {
            "line": {"since": midnight.isoformat(), **rates(self.counters.totals(since=midnight))},
            "shift": {
                "id": shift_id,
                "since": shift_start.isoformat(),
                **rates(self.counters.totals(since=shift_start)),
            },
        }
        if batch is not None:
            scopes["batch"] = {"id": batch, **rates(self.counters.totals(batch=batch))}
        return {
            "ts": now.isoformat(timespec="milliseconds"),
            "line": self.counters.line,
            "shift": shift_id,
            "batch": batch,
            "threshold": self.threshold,
            "window": self.window(),
            "scopes": scopes,
        }
