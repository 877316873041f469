"""What the traceability profiles (bag scanner, case packer, pallet builder, shipping scanners)
share: the trace store, the code rules, the scanner reading's roles and the code alarms.

A scanner reading (drivers/scanner, drivers/camera) carries ``codes`` (one per line) and
``noread``; a garbage frame carries neither and is reported by the gateway as a device error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from pydantic import Field

from drivers.base import Reading
from gateway.codes import CodeCheck, Sighting, TraceCodeRules, check_code
from gateway.events import EventDraft
from gateway.profiles.base import ProfileConfigBase, Role
from gateway.profiles.context import LineContext
from gateway.traceline import TraceLine, open_trace_line

__all__ = ["SCANNER_ROLES", "ScanningProfile", "TraceProfileConfigBase"]

SCANNER_ROLES = (
    Role("codes", "codes", description="The code(s) of a frame, one per line."),
    Role("noread", "noread", description="True when the frame was a no-read."),
)


class TraceProfileConfigBase(ProfileConfigBase):
    """Fields of every traceability profile."""

    store: Path = Field(
        default=Path("var/trace.db"),
        description="The line's trace store (SQLite): code index, bindings, KPI counters. Every "
        "traceability profile of a line names the same file.",
    )
    codes: TraceCodeRules = Field(
        default_factory=TraceCodeRules,
        description="How scanned codes are checked (QB/T 5279-2018 6.2, 8.2, Annex A).",
    )


class ScanningProfile:
    """Base of the traceability profiles: bound to its line by the gateway (``bind_line``)."""

    stage = "scan"

    def __init__(self, cfg: TraceProfileConfigBase, tags: Mapping[str, str], tz: tzinfo) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.tz = tz
        self.codes_tag = tags.get("codes", "codes")
        self.noread_tag = tags.get("noread", "noread")
        self._line: LineContext | None = None
        self._trace: TraceLine | None = None

    # -- the line ---------------------------------------------------------------------------------
    def bind_line(self, line: LineContext) -> None:
        self._line = line
        self._trace = open_trace_line(self.cfg.store, line.line)

    @property
    def line(self) -> LineContext:
        if self._line is None:
            raise RuntimeError(f"profile for {self.device} used before bind_line()")
        return self._line

    @property
    def trace(self) -> TraceLine:
        if self._trace is None:
            raise RuntimeError(f"profile for {self.device} used before bind_line()")
        return self._trace

    def on_tick(self, now: datetime) -> list[EventDraft]:
        return []

    # -- readings ---------------------------------------------------------------------------------
    def codes_of(self, reading: Reading) -> list[str]:
        value = reading.values.get(self.codes_tag)
        if not isinstance(value, str):
            return []
        return [c for c in value.split("\n") if c]

    def is_noread(self, reading: Reading) -> bool:
        return reading.values.get(self.noread_tag) is True

    def check(self, raw: str) -> CodeCheck:
        return check_code(raw, self.cfg.codes, self.line.enterprise)

    # -- alarms -----------------------------------------------------------------------------------
    def invalid_alarm(self, check: CodeCheck, ts: datetime) -> EventDraft:
        data: dict[str, Any] = {
            "stage": self.stage,
            "raw": check.raw,
            "code": check.code,
            "error": check.error,
            "reason": check.reason,
            "detail": f"invalid code at {self.stage}: {check.reason}",
        }
        return EventDraft("alarm.invalid_code", ts, data, device=self.device)

    def duplicate_alarm(self, seen: Sighting, ts: datetime, **extra: Any) -> EventDraft:
        data: dict[str, Any] = {
            "stage": seen.stage,
            "code": seen.code,
            "count": seen.count,
            "first_seen": seen.first_ts,
            "first_device": seen.first_device,
            "detail": f"code {seen.code} seen {seen.count} times at {seen.stage}, first at "
            f"{seen.first_ts} (a copied or reprinted mark, QB/T 5279 8.8)",
            **extra,
        }
        return EventDraft("alarm.duplicate_code", ts, data, device=self.device)
