"""What every CCP profile records, and how: common settings, value checks, event builders.

QB/T 5279-2018 7.2 table 2 row 4 asks that the critical control points of salt production
(metal detector, magnet rods, net content, safety sieve; iodization is a collection node of
10.2.3) be recorded so that they can be traced. A profile records each check as a ``ccp.{kind}``
event whose ``data`` carries at least ``value``, ``unit``, ``limits`` and ``verdict`` (contract);
a failed verdict or a missed periodic check also raises ``alarm.ccp`` saying what, where and the
limit. A value the profile cannot trust (missing, NaN, negative, stale, too old) gives
``alarm.device`` naming the tag, and no verdict at all.

Boolean checks (a test piece detected, a sieve screen intact) carry ``limits`` as
``{"expected": true}``; numeric ones as ``{"lo": …, "hi": …}`` (``null`` = unbounded).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import Field

from drivers.base import Reading
from gateway.events import EventDraft
from gateway.profiles.base import ProfileConfigBase

__all__ = [
    "BOOL_LIMITS",
    "CcpProfileConfig",
    "bad_value",
    "bool_verdict",
    "ccp_alarm",
    "ccp_record",
    "device_alarm",
    "read_bool",
    "read_number",
    "verdict_in",
]

BOOL_LIMITS: dict[str, Any] = {"expected": True}


class CcpProfileConfig(ProfileConfigBase):
    """Settings every CCP profile (except the checkweigher) shares."""

    max_reading_age_s: float = Field(
        default=10.0,
        gt=0,
        description="A reading whose time is older than this (against the gateway clock) is "
        "stale: alarm.device (state stale) and no verdict.",
    )


def read_number(
    reading: Reading, tag: str, *, negative_ok: bool = False
) -> tuple[float | None, str | None]:
    """``(value, None)`` when ``tag`` holds a sane number, else ``(None, why)``.

    Not sane: missing (the driver's reason, if it gave one), not a number, NaN/±Inf, or
    negative where a negative value means nothing (a weight, a flow, a field strength).
    """
    if tag not in reading.values:
        return None, reading.errors.get(tag, "missing from the reading")
    raw = reading.values[tag]
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None, f"not a number ({raw!r})"
    value = float(raw)
    if not math.isfinite(value):
        return None, f"not a finite number ({value})"
    if value < 0 and not negative_ok:
        return None, f"negative ({value:g}), which is meaningless here"
    return value, None


def read_bool(reading: Reading, tag: str) -> tuple[bool | None, str | None]:
    """``(flag, None)`` when ``tag`` holds a boolean (or 0/1), else ``(None, why)``."""
    if tag not in reading.values:
        return None, reading.errors.get(tag, "missing from the reading")
    raw = reading.values[tag]
    if isinstance(raw, bool):
        return raw, None
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw), None
    return None, f"not a boolean ({raw!r})"


def verdict_in(value: float, lo: float | None, hi: float | None) -> str:
    """``pass`` when ``lo ≤ value ≤ hi`` (bounds inclusive, ``None`` = unbounded)."""
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return "fail"
    return "pass"


def bool_verdict(value: bool) -> str:
    return "pass" if value else "fail"


def ccp_record(
    kind: str,
    ts: datetime,
    device: str,
    *,
    value: float | bool,
    unit: str | None,
    limits: dict[str, Any],
    verdict: str,
    **extra: Any,
) -> EventDraft:
    """One ``ccp.{kind}`` record (contract: value, unit, limits, verdict, then the kind's own)."""
    data: dict[str, Any] = {
        "value": value,
        "unit": unit,
        "limits": dict(limits),
        "verdict": verdict,
        **extra,
    }
    return EventDraft(f"ccp.{kind}", ts, data, device=device)


def ccp_alarm(
    kind: str,
    ts: datetime,
    device: str,
    *,
    check: str,
    value: float | bool | None,
    unit: str | None,
    limits: dict[str, Any],
    detail: str,
    **extra: Any,
) -> EventDraft:
    """``alarm.ccp``: what failed (``ccp``, ``check``, ``value``), where (the event's device and
    line) and against which limit, with a sentence for the operator in ``detail``."""
    data: dict[str, Any] = {
        "ccp": kind,
        "check": check,
        "value": value,
        "unit": unit,
        "limits": dict(limits),
        "verdict": "fail",
        "detail": detail,
        **extra,
    }
    return EventDraft("alarm.ccp", ts, data, device=device)


def device_alarm(
    ts: datetime, device: str, *, state: str, tag: str, reason: str, detail: str, **extra: Any
) -> EventDraft:
    """``alarm.device`` for one tag the profile cannot use: ``state`` is ``bad_value`` (missing,
    NaN, negative, nonsensical), ``stale`` (stopped changing, too old) or ``values_ok``."""
    data: dict[str, Any] = {
        "state": state,
        "tag": tag,
        "reason": reason,
        "detail": detail,
        **extra,
    }
    return EventDraft("alarm.device", ts, data, device=device)


def bad_value(
    ts: datetime, device: str, tag: str, why: object, detail: str, **extra: Any
) -> EventDraft:
    """``alarm.device`` (``bad_value``) for a tag whose value a record needs but cannot use."""
    return device_alarm(
        ts, device, state="bad_value", tag=tag, reason=str(why), detail=detail, **extra
    )
