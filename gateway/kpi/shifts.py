"""Shifts (班组, QB/T 5279-2018 7.2 table 2 row 2: 分装信息 names the line and the team) and
which one a time falls in."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_SHIFTS", "ShiftConfig", "current_shift"]


class ShiftConfig(BaseModel):
    """One shift: it runs from its start until the next shift's start."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=32, description="Shift (team) name, e.g. A.")
    start: str = Field(description="Local start time, HH:MM (24 h).", examples=["08:00"])

    @field_validator("start")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        m = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])", v)
        if not m:
            raise ValueError(f"expected HH:MM (00:00–23:59); got {v!r}")
        return v

    def start_time(self) -> time:
        hh, mm = self.start.split(":")
        return time(int(hh), int(mm))


DEFAULT_SHIFTS = (
    ShiftConfig(name="A", start="08:00"),
    ShiftConfig(name="B", start="16:00"),
    ShiftConfig(name="C", start="00:00"),
)


def current_shift(shifts: list[ShiftConfig], now: datetime) -> tuple[str, datetime]:
    """(shift id ``YYYY-MM-DD/NAME`` with the date it started, start time) for local ``now``."""
    best: tuple[datetime, str] | None = None
    for shift in shifts:
        for days_back in (0, 1):
            day = now.date() - timedelta(days=days_back)
            start = datetime.combine(day, shift.start_time(), tzinfo=now.tzinfo)
            if start <= now and (best is None or start > best[0]):
                best = (start, shift.name)
    assert best is not None  # some shift started within the last 24 h
    return f"{best[0].date().isoformat()}/{best[1]}", best[0]
