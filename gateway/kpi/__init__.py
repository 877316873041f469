"""Live scan and packing KPIs of a line (scan rate, no-read rate, duplicate rate, aggregation
right-first-time) per line, shift and batch."""

from gateway.kpi.calculator import KpiCalculator, rates
from gateway.kpi.counters import METRICS, KpiCounters
from gateway.kpi.shifts import DEFAULT_SHIFTS, ShiftConfig, current_shift

__all__ = [
    "DEFAULT_SHIFTS",
    "METRICS",
    "KpiCalculator",
    "KpiCounters",
    "ShiftConfig",
    "current_shift",
    "rates",
]
