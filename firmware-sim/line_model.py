"""The packing line a simulated line PLC runs: a PackML state machine, bag and case counters,
batches, speed, fill weight and iodine content — no network, stepped by the caller's clock.

Batch cycle (automatic unless a command took over)::

    Idle ─start→ Starting → Execute ─end (or batch_secs)→ Completing → Complete
     ▲                       │    ▲                                   (batch number cleared)
     │          hold_every_s ▼    │                                        │
     │                     Holding → Held → Unholding                      │
     └─────────────────────────── Resetting ◄──────────────────────────────┘

Commands (what the PLC's command tags trigger): :meth:`start_batch` (a running batch is
replaced: the number changes and the new batch starts over), :meth:`end_batch`, :meth:`set_batch`
(the batch number only). The first command switches the line to remote control: the automatic
schedule stops.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from gateway.packml import PackMLState

__all__ = ["FEED_MATERIALS", "LineModel", "LineSettings"]

#: What a salt packing line is fed (QB/T 5279 7.2 table 2 row 1, 投料): name, lot prefix,
#: feeding point, quantity range in kg.
FEED_MATERIALS: tuple[tuple[str, str, str, float, float], ...] = (
    ("原盐 (raw salt)", "RS", "hopper-1", 500.0, 1000.0),
    ("碘酸钾 (KIO3)", "KI", "iodine-doser", 0.5, 1.2),
    ("亚铁氰化钾 (anti-caking agent)", "AC", "additive-doser", 0.2, 0.5),
)
OPERATORS = ("王强", "李娜", "张伟")

S = PackMLState

#: Acting states and the state each leads to once its action is done.
_NEXT = {
    S.STARTING: S.EXECUTE,
    S.COMPLETING: S.COMPLETE,
    S.RESETTING: S.IDLE,
    S.HOLDING: S.HELD,
    S.UNHOLDING: S.EXECUTE,
}
_RUNNING = frozenset({S.STARTING, S.EXECUTE, S.HOLDING, S.HELD, S.UNHOLDING})


@dataclass(frozen=True, slots=True)
class LineSettings:
    line_id: str = "L1"
    speed_min: float = 120.0
    speed_max: float = 200.0
    bags_per_case: int = 20
    nominal_g: float = 400.0
    product: str = "加碘精制盐 400g"
    shift: str | None = None
    auto_batches: bool = True
    batch_secs: float = 25.0
    idle_secs: float = 5.0
    first_batch_after_secs: float = 2.0
    transition_secs: float = 1.0
    complete_secs: float = 1.0
    hold_every_s: float | None = None
    hold_for_s: float = 3.0
    iodine_mg_kg: float = 25.0
    iodine_every_s: float = 10.0
    feed_every_s: float | None = 15.0  # a feeding (投料) this often while producing


def shift_of(now: datetime) -> str:
    """Three shifts: A 06–14, B 14–22, C 22–06."""
    return "A" if 6 <= now.hour < 14 else "B" if 14 <= now.hour < 22 else "C"


class LineModel:
    """The line's state; :meth:`step` advances it to time ``t`` (seconds, monotonic)."""

    def __init__(self, settings: LineSettings, rng: random.Random, t: float) -> None:
        self.s = settings
        self.rng = rng
        self.state = S.IDLE
        self.mode = 1  # Production
        self.speed = 0.0
        self.bag_count = 0
        self.case_count = 0
        self.batch = ""
        self.product = ""
        self.shift = settings.shift or ""
        self.fill_weight_g = 0.0
        self.iodine_mg_kg = settings.iodine_mg_kg
        self.remote = not settings.auto_batches
        self.feed_count = 0
        self.feed_material = ""
        self.feed_lot = ""
        self.feed_qty_kg = 0.0
        self.feed_point = ""
        self.feed_operator = ""
        self._next_feed = t + (settings.feed_every_s or 0.0) / 2
        self.batches_started = 0
        self._t = t
        self._since = t  # when the current state was entered
        self._bag_phase = 0.0
        self._next_hold = None if settings.hold_every_s is None else t + settings.hold_every_s
        self._next_iodine = t
        self._next_drift = t
        self._batch_t = t  # when the current batch entered Execute
        self._idle_until = t + settings.first_batch_after_secs

    # -- commands ------------------------------------------------------------------------------
    def start_batch(
        self, batch: str, product: str | None, shift: str | None, now: datetime
    ) -> None:
        """Start ``batch`` (completing a running one first)."""
        self.remote = True
        self._begin(batch, product, shift, now)

    def end_batch(self) -> None:
        self.remote = True
        if self.state in _RUNNING:
            self._enter(S.COMPLETING)

    def set_batch(self, batch: str) -> None:
        """A new batch number from MES (the running batch continues under it)."""
        self.remote = True
        self.batch = batch

    def _begin(self, batch: str, product: str | None, shift: str | None, now: datetime) -> None:
        # a running batch ends here: its number is replaced by the new one
        self.batch = batch
        self.product = product or self.product or self.s.product
        self.shift = shift or self.s.shift or shift_of(now)
        self.batches_started += 1
        self._enter(S.STARTING)

    def _enter(self, state: PackMLState) -> None:
        if state == S.EXECUTE and self.state == S.STARTING:
            self._batch_t = self._t  # the batch's production starts (holds do not restart it)
            self._schedule_hold()
        elif state == S.HOLDING:
            self._schedule_hold()
        self.state = state
        self._since = self._t
        if state == S.COMPLETE:
            self.batch = ""
        if state == S.IDLE:
            self._idle_until = self._t + self.s.idle_secs

    def _schedule_hold(self) -> None:
        if self.s.hold_every_s is not None:
            self._next_hold = self._t + self.s.hold_every_s

    def auto_batch_number(self, now: datetime) -> str:
        return f"{now:%Y%m%d}-{self.s.line_id}-{self.batches_started + 1:02d}"

    # -- time ----------------------------------------------------------------------------------
    def freeze(self, t: float) -> None:
        """Move the clock to ``t`` as if no time had passed (a stalled PLC's timers stand)."""
        gap = max(0.0, t - self._t)
        self._t = t
        self._since += gap
        self._batch_t += gap
        self._idle_until += gap
        self._next_iodine += gap
        self._next_drift += gap
        if self._next_hold is not None:
            self._next_hold += gap

    def step(self, t: float, now: datetime) -> None:
        """Advance to monotonic time ``t`` (wall clock ``now`` for shifts and batch numbers)."""
        dt = max(0.0, t - self._t)
        self._t = t
        in_state = t - self._since
        if self.state in _NEXT and in_state >= self.s.transition_secs:
            self._enter(_NEXT[self.state])
        elif self.state == S.COMPLETE and in_state >= self.s.complete_secs:
            self._enter(S.RESETTING)
        elif self.state == S.IDLE and not self.remote and t >= self._idle_until:
            self._begin(self.auto_batch_number(now), None, None, now)
        elif self.state == S.EXECUTE:
            if not self.remote and t - self._batch_t >= self.s.batch_secs:
                self._enter(S.COMPLETING)
            elif self._next_hold is not None and t >= self._next_hold:
                self._enter(S.HOLDING)
        elif self.state == S.HELD and in_state >= self.s.hold_for_s:
            self._enter(S.UNHOLDING)
        self._produce(dt)
        every = self.s.feed_every_s
        if every is not None and self.state == S.EXECUTE and t >= self._next_feed:
            self._next_feed = t + every
            self._feed(now)
        if t >= self._next_iodine:
            self._next_iodine = t + self.s.iodine_every_s
            self.iodine_mg_kg = round(self.rng.gauss(self.s.iodine_mg_kg, 1.5), 1)

    def _feed(self, now: datetime) -> None:
        """One feeding: the next material in turn, a lot of today, a quantity, an operator."""
        name, prefix, point, lo, hi = FEED_MATERIALS[self.feed_count % len(FEED_MATERIALS)]
        self.feed_count += 1
        self.feed_material = name
        self.feed_lot = f"{prefix}-{now:%Y%m%d}-{1 + self.feed_count // len(FEED_MATERIALS):03d}"
        self.feed_qty_kg = round(self.rng.uniform(lo, hi), 3)
        self.feed_point = point
        self.feed_operator = self.rng.choice(OPERATORS)

    def _produce(self, dt: float) -> None:
        if self.state != S.EXECUTE:
            self.speed = 0.0
            return
        lo, hi = self.s.speed_min, self.s.speed_max
        if self.speed == 0.0:
            self.speed = round((lo + hi) / 2, 1)
        if self._t >= self._next_drift:  # the speed wanders a little, once a second
            self._next_drift = self._t + 1.0
            drift = self.rng.uniform(-1.0, 1.0) * (hi - lo) * 0.05
            self.speed = round(min(hi, max(lo, self.speed + drift)), 1)
        self._bag_phase += self.speed / 60.0 * dt
        while self._bag_phase >= 1.0:
            self._bag_phase -= 1.0
            self.bag_count = (self.bag_count + 1) & 0xFFFFFFFF
            self.fill_weight_g = round(self.rng.gauss(self.s.nominal_g + 2.0, 1.5), 1)
            if self.bag_count % self.s.bags_per_case == 0:
                self.case_count = (self.case_count + 1) & 0xFFFFFFFF
