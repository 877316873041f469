"""What the simulated Modbus TCP devices share: a block of holding registers swapped atomically,
served read-only to one unit id, with fault knobs for tests.

Same approach as :mod:`firmware_sim.checkweigher` (pymodbus 3.16 ``SimDevice``/``SimData``):

* the device's ``action`` callback answers every request to our unit after pymodbus's address
  check: it copies the current snapshot into the register list pymodbus hands it, so a client
  never sees half an update;
* a second ``SimDevice`` with id 0 spanning every address answers other unit ids with exception
  11 (pymodbus would otherwise fail with a KeyError);
* requests other than "read holding registers" get exception 1, addresses past the block
  exception 2 (pymodbus's own check); a device that also has coils (:meth:`coil_image`)
  answers "read coils" (FC 1) from coil 0.

A subclass says how many registers it has (:attr:`register_count`), how to encode its state
(:meth:`snapshot`) and which production loops to run (:meth:`loops`); it calls :meth:`publish`
after changing its state.

pymodbus (the ``modbus`` extra) is imported where a device starts listening or answers, never
when this module is imported: a config naming Modbus simulators validates without it, and
``saltgw sim`` names the missing extra (gateway/config/extras.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from firmware_sim.base import SimulatorConfigBase

if TYPE_CHECKING:
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import SimDevice

__all__ = ["ModbusSimBase", "ModbusSimConfig", "every", "f32", "u32"]

log = logging.getLogger(__name__)

_READ_COILS = 1
_READ_HOLDING_REGISTERS = 3


class ModbusSimConfig(SimulatorConfigBase):
    """Settings every simulated Modbus TCP device has."""

    unit_id: int = Field(default=1, ge=1, le=247, description="Modbus unit id it answers.")


def u32(value: int) -> list[int]:
    """Two registers of an unsigned 32-bit value, most significant first (ABCD)."""
    value &= 0xFFFFFFFF
    return [value >> 16, value & 0xFFFF]


def f32(value: float) -> list[int]:
    """Two registers of a float32, most significant first (ABCD)."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


class ModbusSimBase:
    """A running simulated Modbus TCP device (see the module docstring)."""

    register_count: ClassVar[int]
    kind: ClassVar[str]

    def __init__(self, config: ModbusSimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self._port = config.port
        self._server: ModbusTcpServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._exception_code: ExcCodes | None = None
        self._registers = [0] * self.register_count
        self._lock = asyncio.Lock()  # serialises going offline / online
        self.running = False
        #: False: the device answers on a serial line it does not own (a slave of
        #: :class:`firmware_sim.modbus_rtu_line.ModbusRtuLineSim`), not on a TCP port of its own
        self.serve_tcp = True
        #: a slave on a serial line: True while it does not answer (dead, or dropped)
        self.silent = False

    # --- for subclasses ----------------------------------------------------------------------
    def snapshot(self) -> list[int]:
        """The registers for the current state (exactly :attr:`register_count` of them)."""
        raise NotImplementedError

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        """The production loops to run while started."""
        return []

    def coil_image(self) -> bool | None:
        """The value of coil 0 for "read coils" (FC 1); None: no coils (exception 1)."""
        return None

    def after_coil_read(self) -> None:
        """Called once a coil read was answered (before its response is sent): a test knob
        may change the device's state here, between two requests of one client poll."""

    def publish(self) -> None:
        """Make the current state what clients read, in one swap."""
        regs = self.snapshot()
        assert len(regs) == self.register_count, (len(regs), self.register_count)
        self._registers = regs

    # --- public API ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port; the bound one once started (``port: 0`` picks a free one)."""
        return self._port

    @property
    def online(self) -> bool:
        if not self.serve_tcp:
            return not self.silent
        return self._server is not None

    @property
    def exception_code(self) -> int | None:
        """The exception every request is answered with (:meth:`set_exception_mode`); None:
        answer normally."""
        return None if self._exception_code is None else int(self._exception_code)

    @property
    def registers(self) -> list[int]:
        """The holding registers as a client would read them now."""
        return list(self._registers)

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self.kind} already started")
        if self.serve_tcp:
            await self._listen()
        self.running = True
        self.publish()
        for i, coro in enumerate(self.loops()):
            self._spawn(coro, f"{self.kind}-{self.config.id}-{i}")
        if not self.serve_tcp:
            return
        log.info(
            "%s %r listening on %s:%d (unit %d)",
            self.kind,
            self.config.id,
            self.config.host,
            self._port,
            self.config.unit_id,
        )

    async def stop(self) -> None:
        """Stop producing, close the server and every connection. Never hangs."""
        self.running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self._go_offline()

    async def drop(self, seconds: float) -> None:
        """Drop off the network now; come back on the same port after ``seconds`` (a slave on
        a serial line stops answering and answers again after ``seconds``)."""
        if not self.serve_tcp:
            self.silent = True
            self._spawn(self._answer_again_after(seconds), f"{self.kind}-answer-again")
            return
        await self._go_offline()
        self._spawn(self._come_back_after(seconds), f"{self.kind}-come-back")

    def set_exception_mode(self, on: bool, code: ExcCodes | None = None) -> None:
        """While on, every request is answered with Modbus exception ``code`` (default:
        illegal data address)."""
        from pymodbus.constants import ExcCodes

        if code is None:
            code = ExcCodes.ILLEGAL_ADDRESS
        self._exception_code = code if on else None

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
        from pymodbus.constants import ExcCodes

        if self._exception_code is not None:
            return self._exception_code
        coil = self.coil_image() if function_code == _READ_COILS else None
        if coil is not None and set_values is None:
            # one shared block: coil 0 is bit 0 of "register 0"; the next request puts the
            # holding registers back (each request's answer is set here, in one step)
            current_registers[0 : self.register_count] = [0xFFFF if coil else 0] + [0] * (
                self.register_count - 1
            )
            self.after_coil_read()
            return None
        if function_code != _READ_HOLDING_REGISTERS or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        current_registers[0 : self.register_count] = self._registers
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
        from pymodbus.constants import ExcCodes

        return ExcCodes.GATEWAY_NO_RESPONSE

    def _devices(self) -> list[SimDevice]:
        from pymodbus.simulator import DataType, SimData, SimDevice

        regs = SimData(0, count=self.register_count, values=0, datatype=DataType.REGISTERS)
        ours = SimDevice(id=self.config.unit_id, simdata=[regs], action=self._action)
        other = SimDevice(
            id=0,
            simdata=[SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)],
            action=self._wrong_unit,
        )
        return [ours, other]

    async def _listen(self) -> None:
        from pymodbus.server import ModbusTcpServer

        server = ModbusTcpServer(self._devices(), address=(self.config.host, self._port))
        await server.serve_forever(background=True)
        sockets = getattr(server.transport, "sockets", None)
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
                await asyncio.wait_for(server.shutdown(), 2.0)  # type: ignore[no-untyped-call]
            wait_closed = getattr(listener, "wait_closed", None)
            if wait_closed is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(wait_closed(), 2.0)

    async def _answer_again_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.silent = False

    async def _come_back_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        async with self._lock:
            if self._server is not None or not self.running:
                return
            for attempt in range(50):  # the port may be briefly busy; keep it
                try:
                    await self._listen()
                    return
                except (RuntimeError, OSError):
                    if attempt == 49:
                        raise
                    await asyncio.sleep(0.1)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def every(period_s: float, step: Callable[[], object]) -> None:
    """Call ``step()`` every ``period_s`` seconds on a steady schedule (no drift, no bursts)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += period_s
        await asyncio.sleep(max(0.0, due - loop.time()))
        if due < loop.time() - period_s:  # stalled: skip what was missed
            due = loop.time()
        step()
