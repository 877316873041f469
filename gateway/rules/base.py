"""The rule seam: a rule sees the readings of one device and returns event drafts."""

from __future__ import annotations

from typing import Protocol

from drivers.base import Reading
from gateway.events import EventDraft

__all__ = ["Rule"]


class Rule(Protocol):
    device: str

    def on_reading(self, reading: Reading) -> list[EventDraft]: ...
