"""Line PLC → ``batch.start`` / ``batch.end`` (QB/T 5279-2018 10.2.4: the batch ties a line's
records together), ``line.state`` (PackML state and mode) and ``line.counters`` (bags and cases).
Event data: ``docs/line-events.md``.

- A batch starts when the PLC's batch number becomes a non-empty value other than the open
  batch's, and ends when it changes again (cleared: ``reason: cleared``; another number:
  ``replaced``, and the new batch starts). The first reading after the gateway starts is a
  baseline: a batch already running gives ``batch.start`` with ``resumed: true``, so that the
  line's events carry their batch again after a gateway restart.
- Bags and cases of a batch are the sum of the counters' increments while it was open (a counter
  that goes back is taken as reset to zero), so a PLC restart or a counter reset does not
  corrupt them.
- ``line.state`` on every change of the PackML state or unit mode (and once at start);
  ``line.counters`` at most every ``counters_every_secs``, only when a counter moved.
- ``commands:`` maps MES commands to the PLC's tags (``gateway/commands.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal

from pydantic import Field

from drivers.base import Reading, TagValue
from gateway.commands import CommandMap
from gateway.events import EventDraft
from gateway.packml import mode_name, state_name
from gateway.profiles.base import ProfileConfigBase, ProfileSpec, Role
from gateway.profiles.context import LineContext

__all__ = ["LINE_PLC", "LinePlcProfile", "LinePlcProfileConfig"]

_WRAP = 1 << 32


class LinePlcProfileConfig(ProfileConfigBase):
    profile: Literal["line_plc"] = Field(
        description="A packing line's PLC: batches, PackML state, counters."
    )
    line: str | None = Field(
        default=None,
        description="Line id written into batch events' data (data.line), e.g. the PLC's name "
        "for its line; none = the gateway's line id (the envelope's `line`).",
    )
    counters_every_secs: float = Field(
        default=10,
        gt=0,
        description="At most one line.counters event this often, and only when a counter moved.",
    )
    commands: CommandMap | None = Field(
        default=None,
        description="MES commands this PLC takes and the tags each writes (docs/commands.md); "
        "none = it takes no commands.",
    )


ROLES = (
    Role("batch", "batch_number", description="Batch number; '' (or blank) = no batch."),
    Role("product", "product", required=False, description="Product of the batch."),
    Role("shift", "shift", required=False, description="Shift producing the batch."),
    Role("state", "state", required=False, description="PackML state number (OPC 30050)."),
    Role("mode", "mode", required=False, description="PackML unit mode number."),
    Role("bags", "bag_count", required=False, description="Bag counter (filled bags)."),
    Role("cases", "case_count", required=False, description="Case counter (packed cases)."),
    Role("speed", "speed", required=False, description="Line speed, bags per minute."),
)


@dataclass(slots=True)
class _Batch:
    batch: str
    product: TagValue | None
    shift: TagValue | None
    started: datetime
    bags: int = 0
    cases: int = 0


def _increment(previous: int | None, value: int) -> int:
    """How much a counter moved; a counter going back was reset to 0 (or wrapped at 2^32)."""
    if previous is None:
        return 0
    if value >= previous:
        return value - previous
    if previous - value > _WRAP // 2:  # uint32 wrap-around
        return value + _WRAP - previous
    return value


class LinePlcProfile:
    def __init__(self, cfg: LinePlcProfileConfig, tags: Mapping[str, str], tz: tzinfo) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.line = cfg.line
        self.tags = dict(tags)  # role -> tag
        self.known: dict[str, TagValue] = {}
        self.open: _Batch | None = None
        self._seen_batch = False
        self._state: tuple[Any, Any] | None = None
        self._counts: dict[str, int] = {}
        self._moved = False
        self._window: tuple[datetime, int | None] | None = None  # counters interval start

    def bind_line(self, line: LineContext) -> None:
        """The gateway's line (gateway/profiles/context.py): its id is data.line by default."""
        if self.line is None:
            self.line = line.line

    # -- readings ------------------------------------------------------------------------------
    def on_reading(self, reading: Reading) -> list[EventDraft]:
        values = {
            role: reading.values[tag] for role, tag in self.tags.items() if tag in reading.values
        }
        self.known.update(values)
        for role in ("bags", "cases"):
            value = values.get(role)
            if isinstance(value, int) and not isinstance(value, bool):
                self._count(role, value)
        out: list[EventDraft] = []
        if "batch" in values:
            out += self._batch_change(_batch_text(values["batch"]), reading.ts)
        if "state" in values or "mode" in values:
            out += self._state_change(reading.ts)
        return out

    def _count(self, role: str, value: int) -> None:
        step = _increment(self._counts.get(role), value)
        self._counts[role] = value
        if step:
            self._moved = True
            if self.open is not None:
                if role == "bags":
                    self.open.bags += step
                else:
                    self.open.cases += step

    def _batch_change(self, batch: str, ts: datetime) -> list[EventDraft]:
        first, self._seen_batch = not self._seen_batch, True
        current = self.open.batch if self.open is not None else ""
        if batch == current:
            return []
        out = []
        if self.open is not None:
            out.append(self._end(ts, "cleared" if not batch else "replaced"))
        if batch:
            out.append(self._start(batch, ts, resumed=first))
        return out

    def _start(self, batch: str, ts: datetime, *, resumed: bool) -> EventDraft:
        product, shift = self.known.get("product"), self.known.get("shift")
        self.open = _Batch(batch, product, shift, ts)
        data = {
            "batch": batch,
            "product": product,
            "line": self.line,
            "shift": shift,
            "resumed": resumed,
        }
        return EventDraft("batch.start", ts, data, device=self.device, batch=batch)

    def _end(self, ts: datetime, reason: str) -> EventDraft:
        b = self.open
        assert b is not None
        self.open = None
        data = {
            "batch": b.batch,
            "product": b.product,
            "line": self.line,
            "shift": b.shift,
            "bags": b.bags if "bags" in self.tags else None,
            "cases": b.cases if "cases" in self.tags else None,
            "duration_s": round((ts - b.started).total_seconds(), 3),
            "started": b.started.isoformat(timespec="milliseconds"),
            "reason": reason,
        }
        return EventDraft("batch.end", ts, data, device=self.device, batch=b.batch)

    def _state_change(self, ts: datetime) -> list[EventDraft]:
        state, mode = self.known.get("state"), self.known.get("mode")
        previous = self._state
        if previous == (state, mode):
            return []
        self._state = (state, mode)
        data = {
            "state": state,
            "state_name": _name(state, state_name),
            "mode": mode,
            "mode_name": _name(mode, mode_name),
            "previous": previous[0] if previous else None,
            "previous_name": _name(previous[0], state_name) if previous else None,
        }
        return [EventDraft("line.state", ts, data, device=self.device)]

    # -- time ----------------------------------------------------------------------------------
    def on_tick(self, now: datetime) -> list[EventDraft]:
        bags = self._counts.get("bags")
        if self._window is None:
            self._window = (now, bags)
            return []
        since, bags_then = self._window
        elapsed = (now - since).total_seconds()
        if elapsed < 0:  # the wall clock went back: the interval starts over from now
            self._window = (now, bags_then)
            return []
        if elapsed < self.cfg.counters_every_secs or not self._moved:
            return []
        self._window, self._moved = (now, bags), False
        moved = None if bags is None or bags_then is None else _increment(bags_then, bags)
        data = {
            "bags": self._counts.get("bags"),
            "cases": self._counts.get("cases"),
            "batch": self.open.batch if self.open else None,
            "batch_bags": self.open.bags if self.open else None,
            "batch_cases": self.open.cases if self.open else None,
            "speed": self.known.get("speed"),
            "rate": None if moved is None else round(moved * 60.0 / elapsed, 1),
            "interval_s": round(elapsed, 3),
        }
        return [EventDraft("line.counters", now, data, device=self.device)]


def _batch_text(value: TagValue) -> str:
    return value.strip() if isinstance(value, str) else str(value)


def _name(value: Any, namer: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(namer(value))
    return str(value) if value is not None else None


LINE_PLC = ProfileSpec(
    name="line_plc",
    config_model=LinePlcProfileConfig,
    create=LinePlcProfile,
    roles=ROLES,
    description="Line PLC: batch.start/batch.end from the batch number, line.state from PackML "
    "state and mode, periodic line.counters; MES commands (docs/commands.md).",
)
