"""A simulated checkweigher (a scale on the packing line that weighs and rejects every bag),
speaking Modbus TCP.

Register map — holding registers (FC 3), zero-based addresses, big-endian bytes and words
("ABCD"); the device answers unit ``unit_id`` and is read-only:

    ====  ==========  =======  ==============================================
    addr  name        type     meaning
    ====  ==========  =======  ==============================================
    0-1   count       uint32   weighing counter, +1 per bag
    2-3   weight_g    float32  net weight of the last bag, grams
    4     status      uint16   bit0 = last bag rejected, bit1 = running
    5     nominal_g   uint16   nominal net content, grams
    6-7   rejects     uint32   total rejected bags
    ====  ==========  =======  ==============================================

All eight registers change together, once per weighing, so a reader never sees a new count with
an old weight. Requests other than "read holding registers" get exception 1 (illegal function),
addresses past 7 exception 2 (illegal data address), other unit ids exception 11 (gateway target
device failed to respond).

Weights are ``gauss(nominal_g + mean_offset_g, sigma_g)``; a fraction ``underweight_ratio`` is
forced ``underweight_g`` under nominal. A bag is rejected when it weighs less than
``reject_below_g`` or its weight is not a number (``garbage_ratio`` / :meth:`inject_garbage`).

With ``reject_coil`` the last bag's reject flag is also coil 0 ("read coils", FC 1), as on
checkweighers built on libmodbus; a client then needs two requests per poll, and
``advance_on_coil_read_every: n`` weighs the next bag right after every n-th coil read is
answered — between the two requests of one poll — to reproduce torn readings.

Fault knobs for tests: :meth:`drop` (stop listening and cut every connection, come back later on
the same port), ``dropout_every_s``/``dropout_for_s`` (the same, periodically), and
:meth:`set_exception_mode` (answer every request with an exception).
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from firmware_sim.base import SimulatorSpec
from firmware_sim.modbus_device import ModbusSimBase, ModbusSimConfig, u32

__all__ = ["CHECKWEIGHER", "CheckweigherSim", "CheckweigherSimConfig", "Weighing"]

log = logging.getLogger(__name__)

REGISTER_COUNT = 8
HISTORY_SIZE = 1000


class CheckweigherSimConfig(ModbusSimConfig):
    """A checkweigher producing one weighing per bag at a steady rate."""

    kind: Literal["checkweigher"] = Field(description="Selects the checkweigher simulator.")
    nominal_g: float = Field(
        default=400.0, gt=0, le=65535, description="Nominal net content of a bag, grams."
    )
    rate_per_min: float = Field(
        default=60.0, gt=0, le=60000, description="Bags weighed per minute."
    )
    sigma_g: float = Field(
        default=2.0, ge=0, le=1000, description="Standard deviation of the weight, g."
    )
    mean_offset_g: float = Field(
        default=3.0, description="Mean weight minus nominal, grams (filling slightly over)."
    )
    underweight_ratio: float = Field(
        default=0.05, ge=0, le=1, description="Fraction of bags forced under the reject limit."
    )
    underweight_g: float = Field(
        default=20.0, gt=0, description="How far under nominal a forced underweight bag is, g."
    )
    reject_below_g: float | None = Field(
        default=None,
        description="Bags lighter than this are rejected; none = nominal_g - 12.",
    )
    dropout_every_s: float | None = Field(
        default=None, gt=0, description="Drop off the network every so many seconds; none = never."
    )
    dropout_for_s: float | None = Field(
        default=None, gt=0, description="How long each periodic drop lasts, seconds."
    )
    garbage_ratio: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of weighings whose weight register is NaN."
    )

    reject_coil: bool = Field(
        default=False,
        description="Also serve the last bag's reject flag as coil 0 (FC 1).",
    )
    advance_on_coil_read_every: int | None = Field(
        default=None,
        ge=1,
        description="Test knob: weigh the next bag right after every n-th coil read (between "
        "the requests of one client poll); none = never. Needs reject_coil.",
    )
    reset_counter_at: int | None = Field(
        default=None,
        ge=1,
        description="Test knob: when the counter reaches this value the device is reset: the "
        "next weighing is number 1 again (once); none = never.",
    )

    @model_validator(mode="after")
    def _check_dropout(self) -> CheckweigherSimConfig:
        if (self.dropout_every_s is None) != (self.dropout_for_s is None):
            raise ValueError("dropout_every_s and dropout_for_s go together")
        if self.advance_on_coil_read_every is not None and not self.reject_coil:
            raise ValueError("advance_on_coil_read_every needs reject_coil: true")
        return self

    @property
    def reject_threshold_g(self) -> float:
        """The effective reject limit."""
        if self.reject_below_g is None:
            return self.nominal_g - 12.0
        return self.reject_below_g


@dataclass(frozen=True, slots=True)
class Weighing:
    """One bag as the device recorded it (``weight_g`` already rounded to float32; NaN for a
    garbage weighing)."""

    count: int
    weight_g: float
    rejected: bool


def _f32(value: float) -> tuple[float, list[int]]:
    """``value`` rounded to float32, and its two registers (ABCD)."""
    data = struct.pack(">f", value)
    hi, lo = struct.unpack(">HH", data)
    return struct.unpack(">f", data)[0], [hi, lo]


class CheckweigherSim(ModbusSimBase):
    """The running simulator; see the module docstring for the register map. Serving,
    drop-offs and exception mode come from :class:`ModbusSimBase`."""

    register_count = REGISTER_COUNT
    kind = "checkweigher"
    config: CheckweigherSimConfig

    def __init__(self, config: CheckweigherSimConfig) -> None:
        self._garbage_next = False
        self._count = 0
        self._rejects = 0
        self._weight = 0.0
        self._rejected = False
        self._history: deque[Weighing] = deque(maxlen=HISTORY_SIZE)
        self._coil_reads = 0
        self._reset_done = False
        self.resets: list[tuple[int, int]] = []  # (counter before, counter after) per reset
        super().__init__(config)

    # --- public API -----------------------------------------------------------------------

    @property
    def weighings(self) -> int:
        """Bags weighed so far (equals the count register, before it wraps)."""
        return self._count

    @property
    def history(self) -> list[Weighing]:
        """The last weighings (up to 1000), oldest first."""
        return list(self._history)

    def weighing(self, count: int) -> Weighing | None:
        """The recorded weighing with this counter value, if still in the history."""
        for w in reversed(self._history):
            if w.count == count:
                return w
        return None

    def reset_counter(self, to: int = 0) -> None:
        """A device reset: the weighing counter starts over from ``to`` (the next bag is
        ``to + 1``); the registers still show the last bag's weight."""
        self.resets.append((self._count, to))
        self._count = to
        self.publish()

    def coil_image(self) -> bool | None:
        return self._rejected if self.config.reject_coil else None

    def after_coil_read(self) -> None:
        every = self.config.advance_on_coil_read_every
        self._coil_reads += 1
        if every is not None and self._coil_reads % every == 0:
            self.weigh_one()

    def inject_garbage(self) -> None:
        """Make the next weighing's weight NaN (and the bag rejected)."""
        self._garbage_next = True

    # --- weighing ------------------------------------------------------------------------------

    def snapshot(self) -> list[int]:
        _, weight_regs = _f32(self._weight)
        status = (1 if self._rejected else 0) | (2 if self.running else 0)
        nominal = min(round(self.config.nominal_g), 0xFFFF)
        return [*u32(self._count), *weight_regs, status, nominal, *u32(self._rejects)]

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        cfg = self.config
        out = [self._produce()]
        if cfg.dropout_every_s is not None and cfg.dropout_for_s is not None:
            out.append(self._dropouts(cfg.dropout_every_s, cfg.dropout_for_s))
        return out

    def weigh_one(self) -> Weighing:
        """Produce one weighing now (the production task calls this at ``rate_per_min``)."""
        cfg = self.config
        garbage = self._garbage_next or (
            cfg.garbage_ratio > 0 and self.rng.random() < cfg.garbage_ratio
        )
        self._garbage_next = False
        if garbage:
            weight = math.nan
        elif cfg.underweight_ratio > 0 and self.rng.random() < cfg.underweight_ratio:
            weight = cfg.nominal_g - cfg.underweight_g - abs(self.rng.gauss(0.0, cfg.sigma_g))
        else:
            weight = self.rng.gauss(cfg.nominal_g + cfg.mean_offset_g, cfg.sigma_g)
        weight, _ = _f32(weight)
        rejected = math.isnan(weight) or weight < cfg.reject_threshold_g
        at = cfg.reset_counter_at
        if at is not None and not self._reset_done and self._count >= at:
            self._reset_done = True
            self.resets.append((self._count, 0))
            self._count = 0
        self._count += 1
        self._rejects += int(rejected)
        self._weight, self._rejected = weight, rejected
        record = Weighing(count=self._count & 0xFFFFFFFF, weight_g=weight, rejected=rejected)
        self._history.append(record)
        self.publish()  # one atomic swap
        return record

    async def _produce(self) -> None:
        period = 60.0 / self.config.rate_per_min
        started = time.monotonic()
        done = 0
        while True:
            due = int((time.monotonic() - started) / period)
            done = max(done, due - 1000)  # after a long stall, skip rather than replay it all
            while done < due:
                self.weigh_one()
                done += 1
            await asyncio.sleep(max(0.0, started + (done + 1) * period - time.monotonic()))

    async def _dropouts(self, every: float, duration: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.drop(duration)
            log.info("checkweigher %r dropped off for %.1f s", self.config.id, duration)
            await asyncio.sleep(duration)


CHECKWEIGHER = SimulatorSpec(
    name="checkweigher",
    config_model=CheckweigherSimConfig,
    create=CheckweigherSim,
    description="Checkweigher on Modbus TCP: bag counter, last net weight, reject status "
    "(holding registers 0-7, ABCD); fault knobs for drop-outs, exceptions and NaN weights.",
    extra="modbus",
    requires=("pymodbus",),
)
