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

Fault knobs for tests: :meth:`drop` (stop listening and cut every connection, come back later on
the same port), ``dropout_every_s``/``dropout_for_s`` (the same, periodically), and
:meth:`set_exception_mode` (answer every request with an exception).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import struct
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_sim.base import SimulatorConfigBase, SimulatorSpec

__all__ = ["CHECKWEIGHER", "CheckweigherSim", "CheckweigherSimConfig", "Weighing"]

log = logging.getLogger(__name__)

REGISTER_COUNT = 8
HISTORY_SIZE = 1000
_READ_HOLDING_REGISTERS = 3


class CheckweigherSimConfig(SimulatorConfigBase):
    """A checkweigher producing one weighing per bag at a steady rate."""

    kind: Literal["checkweigher"] = Field(description="Selects the checkweigher simulator.")
    unit_id: int = Field(default=1, ge=1, le=247, description="Modbus unit id it answers.")
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

    @model_validator(mode="after")
    def _check_dropout(self) -> CheckweigherSimConfig:
        if (self.dropout_every_s is None) != (self.dropout_for_s is None):
            raise ValueError("dropout_every_s and dropout_for_s go together")
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


def _u32(value: int) -> list[int]:
    value &= 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


def _f32(value: float) -> tuple[float, list[int]]:
    """``value`` rounded to float32, and its two registers (ABCD)."""
    data = struct.pack(">f", value)
    hi, lo = struct.unpack(">HH", data)
    return struct.unpack(">f", data)[0], [hi, lo]


class CheckweigherSim:
    """The running simulator; see the module docstring for the register map."""

    def __init__(self, config: CheckweigherSimConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._port = config.port
        self._server: ModbusTcpServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._exception_code: ExcCodes | None = None
        self._garbage_next = False
        self._count = 0
        self._rejects = 0
        self._history: deque[Weighing] = deque(maxlen=HISTORY_SIZE)
        self._running = False
        self._registers: list[int] = self._snapshot(0.0, rejected=False)
        self._lock = asyncio.Lock()  # serialises going offline / online

    # --- public API -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port; the bound one once started (``port: 0`` picks a free one)."""
        return self._port

    @property
    def online(self) -> bool:
        """Whether the server is listening."""
        return self._server is not None

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

    @property
    def registers(self) -> list[int]:
        """The eight holding registers as a client would read them now."""
        return list(self._registers)

    async def start(self) -> None:
        """Listen, start weighing (and the periodic drop-outs if configured)."""
        if self._server is not None:
            raise RuntimeError("checkweigher already started")
        await self._listen()
        self._running = True
        self._registers = self._snapshot(0.0, rejected=False)
        self._spawn(self._produce(), "checkweigher-produce")
        if self.config.dropout_every_s is not None and self.config.dropout_for_s is not None:
            self._spawn(
                self._dropouts(self.config.dropout_every_s, self.config.dropout_for_s),
                "checkweigher-dropouts",
            )
        log.info(
            "checkweigher %r listening on %s:%d (unit %d, %.0f bags/min)",
            self.config.id,
            self.config.host,
            self._port,
            self.config.unit_id,
            self.config.rate_per_min,
        )

    async def stop(self) -> None:
        """Stop weighing and close the server and every connection. Never hangs."""
        self._running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self._go_offline()

    async def drop(self, seconds: float) -> None:
        """Drop off the network now (stop listening, cut connections); come back on the same
        port after ``seconds``. Returns once offline. Weighing goes on meanwhile."""
        await self._go_offline()
        log.info("checkweigher %r dropped off for %.1f s", self.config.id, seconds)
        self._spawn(self._come_back_after(seconds), "checkweigher-come-back")

    def set_exception_mode(self, on: bool, code: ExcCodes = ExcCodes.ILLEGAL_ADDRESS) -> None:
        """While on, every request is answered with Modbus exception ``code`` (default 2,
        illegal data address)."""
        self._exception_code = code if on else None

    def inject_garbage(self) -> None:
        """Make the next weighing's weight NaN (and the bag rejected)."""
        self._garbage_next = True

    # --- weighing ------------------------------------------------------------------------------

    def _snapshot(self, weight: float, *, rejected: bool) -> list[int]:
        _, weight_regs = _f32(weight)
        status = (1 if rejected else 0) | (2 if self._running else 0)
        nominal = min(round(self.config.nominal_g), 0xFFFF)
        return [*_u32(self._count), *weight_regs, status, nominal, *_u32(self._rejects)]

    def weigh_one(self) -> Weighing:
        """Produce one weighing now (the production task calls this at ``rate_per_min``)."""
        cfg = self.config
        garbage = self._garbage_next or (
            cfg.garbage_ratio > 0 and self._rng.random() < cfg.garbage_ratio
        )
        self._garbage_next = False
        if garbage:
            weight = math.nan
        elif cfg.underweight_ratio > 0 and self._rng.random() < cfg.underweight_ratio:
            weight = cfg.nominal_g - cfg.underweight_g - abs(self._rng.gauss(0.0, cfg.sigma_g))
        else:
            weight = self._rng.gauss(cfg.nominal_g + cfg.mean_offset_g, cfg.sigma_g)
        weight, _ = _f32(weight)
        rejected = math.isnan(weight) or weight < cfg.reject_threshold_g
        self._count += 1
        self._rejects += int(rejected)
        record = Weighing(count=self._count & 0xFFFFFFFF, weight_g=weight, rejected=rejected)
        self._history.append(record)
        self._registers = self._snapshot(weight, rejected=rejected)  # one atomic swap
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

    # --- network -------------------------------------------------------------------------------

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Called by pymodbus for every request to our unit, after its address check."""
        if self._exception_code is not None:
            return self._exception_code
        if function_code != _READ_HOLDING_REGISTERS or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        current_registers[0:REGISTER_COUNT] = self._registers
        return None

    async def _wrong_unit(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        return ExcCodes.GATEWAY_NO_RESPONSE

    def _devices(self) -> list[SimDevice]:
        regs = SimData(0, count=REGISTER_COUNT, values=0, datatype=DataType.REGISTERS)
        ours = SimDevice(id=self.config.unit_id, simdata=[regs], action=self._action)
        # id 0 answers every other unit id (pymodbus would otherwise fail with a KeyError);
        # it spans all addresses so that its action, not the address check, answers
        other = SimDevice(
            id=0,
            simdata=[SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)],
            action=self._wrong_unit,
        )
        return [ours, other]

    async def _listen(self) -> None:
        server = ModbusTcpServer(self._devices(), address=(self.config.host, self._port))
        await server.serve_forever(background=True)
        listener = server.transport
        sockets = getattr(listener, "sockets", None)
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        self._server = server

    async def _go_offline(self) -> None:
        async with self._lock:
            server, self._server = self._server, None
            if server is None:
                return
            listener = server.transport
            with contextlib.suppress(Exception):
                # closes the listener and every connection (pymodbus leaves shutdown untyped)
                await asyncio.wait_for(server.shutdown(), 2.0)  # type: ignore[no-untyped-call]
            wait_closed = getattr(listener, "wait_closed", None)
            if wait_closed is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(wait_closed(), 2.0)

    async def _go_online(self) -> None:
        async with self._lock:
            if self._server is not None or not self._running:
                return
            for attempt in range(50):  # the port may be briefly busy; keep it, it is our identity
                try:
                    await self._listen()
                except (RuntimeError, OSError) as exc:
                    if attempt == 49:
                        log.error("checkweigher %r cannot listen again: %s", self.config.id, exc)
                        raise
                    await asyncio.sleep(0.1)
                else:
                    log.info("checkweigher %r back on port %d", self.config.id, self._port)
                    return

    async def _come_back_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._go_online()

    async def _dropouts(self, every: float, duration: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.drop(duration)
            await asyncio.sleep(duration)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


CHECKWEIGHER = SimulatorSpec(
    name="checkweigher",
    config_model=CheckweigherSimConfig,
    create=CheckweigherSim,
    description="Checkweigher on Modbus TCP: bag counter, last net weight, reject status "
    "(holding registers 0-7, ABCD); fault knobs for drop-outs, exceptions and NaN weights.",
)
