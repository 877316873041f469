"""A farm of simulated Modbus TCP devices for load tests: D devices x T holding registers, every
register changing every ``period_ms``.

Each device listens on a port of its own — as in a plant, where every PLC, drive or meter has its
own IP address and answers port 502; a serial gateway with many unit ids behind one address is
the RTU case, not this one. Device ``d`` (0-based) listens on ``port + d``, or, with ``port: 0``,
every device on a free port (:attr:`ModbusFarmSim.ports`). Each answers unit ``unit_id`` (other
unit ids: exception 11, gateway target device failed to respond).

Register map of every device — holding registers, zero-based, big-endian bytes and words (ABCD):

    =================  ==========  =========================================================
    address            type        meaning
    =================  ==========  =========================================================
    0-3                uint64      ``changed_ms``: Unix time in ms of the last change
                                   (strictly increasing: +1 ms when the clock did not move)
    4 … 4+T-1          uint16      ``v{i}`` = (k + i) mod 65536, k = the device's change count
    4+T … 4+T+C-1      uint16      command registers (C = ``command_registers``), read/write
    coils 0 … N-1      bit         command coils (N = ``coils``), read/write
    =================  ==========  =========================================================

Every change rewrites registers 0 … 4+T-1 in one step, so a consumer can tell a consistent
reading (``v{i} - i`` the same for every i) from a torn one, and compute read-to-MQTT latency
as (time received) - ``changed_ms``. Function codes: 1 (read coils), 3 (read holding
registers), 5, 6, 15 and 16 (writes: to the command registers and coils only; a write to the
changing registers is exception 2, illegal data address); others exception 1.

The server is a small asyncio protocol of its own rather than pymodbus's simulator: at 50
devices polled 10 times a second the farm must not eat the CPU the gateway is measured on.

Test knobs: ``advance_every_reads: n`` makes a device change right after every n-th holding
register read it answered (between two requests of a client's poll: torn readings, reproducibly);
``period_ms: 0`` stops timed changes. :meth:`ModbusFarmSim.set_exception` answers every request
with an exception code.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field

from firmware_sim.base import SimulatorConfigBase, SimulatorSpec

__all__ = [
    "FARM_HEADER_REGISTERS",
    "MODBUS_FARM",
    "FarmDevice",
    "ModbusFarmSim",
    "ModbusFarmSimConfig",
    "farm_devices",
    "value_at",
]

log = logging.getLogger(__name__)

FARM_HEADER_REGISTERS = 4  # the uint64 changed_ms before the values
_MAX_READ_REGISTERS = 125
_MAX_READ_BITS = 2000
_MAX_WRITE_REGISTERS = 123
_MAX_WRITE_BITS = 1968
# exception codes
_ILLEGAL_FUNCTION, _ILLEGAL_ADDRESS, _ILLEGAL_VALUE, _TARGET_FAILED = 1, 2, 3, 11


class ModbusFarmSimConfig(SimulatorConfigBase):
    """D simulated Modbus TCP devices, each with T holding registers changing every period."""

    kind: Literal["modbus_farm"] = Field(description="Selects the Modbus farm simulator.")
    port: int = Field(
        ge=0,
        le=65535,
        description="TCP port of the first device; device d listens on port + d. 0: every "
        "device on a free port.",
    )
    devices: int = Field(default=10, ge=1, le=1000, description="Number of devices (D).")
    registers: int = Field(
        default=100,
        ge=1,
        le=60000,
        description="Changing value registers per device (T), after the 4 changed_ms registers.",
    )
    period_ms: int = Field(
        default=100,
        ge=0,
        description="Every value register of every device changes this often; 0: never "
        "(changes only by advance_every_reads).",
    )
    unit_id: int = Field(
        default=1, ge=1, le=247, description="Modbus unit id every device answers."
    )
    command_registers: int = Field(
        default=16, ge=0, le=1000, description="Read/write holding registers after the values."
    )
    coils: int = Field(default=16, ge=0, le=2000, description="Read/write coils from address 0.")
    advance_every_reads: int | None = Field(
        default=None,
        ge=1,
        description="Test knob: a device also changes right after every n-th holding register "
        "read it answered.",
    )


def value_at(k: int, i: int) -> int:
    """Register ``v{i}`` of a device whose change count is ``k``."""
    return (k + i) & 0xFFFF


class FarmDevice:
    """One device of the farm: its registers, coils and change count; answers Modbus PDUs."""

    def __init__(self, index: int, config: ModbusFarmSimConfig, clock: Callable[[], float]):
        self.index = index
        self.config = config
        self._clock = clock
        self.k = 0  # change count
        self.changed_ms = 0
        self.reads = 0  # holding register reads answered
        self.requests = 0  # every request received
        self.exception: int | None = None
        self._values_end = FARM_HEADER_REGISTERS + config.registers
        self.registers = [0] * (self._values_end + config.command_registers)
        self.coils = [False] * config.coils
        self.change()

    def change(self) -> None:
        """The next state: every changing register at once (one step of the event loop)."""
        self.k += 1
        # strictly increasing, so that it works as a snapshot counter even for two changes
        # within one millisecond (test knobs) or a clock stepped back
        self.changed_ms = max(int(self._clock() * 1000), self.changed_ms + 1)
        ms = self.changed_ms
        header = [ms >> 48 & 0xFFFF, ms >> 32 & 0xFFFF, ms >> 16 & 0xFFFF, ms & 0xFFFF]
        k = self.k
        self.registers[: self._values_end] = header + [
            (k + i) & 0xFFFF for i in range(self.config.registers)
        ]

    def handle(self, unit: int, pdu: bytes) -> bytes:
        """The response PDU to a request PDU (an exception response when refused)."""
        self.requests += 1
        if not pdu:
            return bytes([0x80, _ILLEGAL_FUNCTION])
        fc = pdu[0]
        if unit != self.config.unit_id:
            return bytes([fc | 0x80, _TARGET_FAILED])
        if self.exception is not None:
            return bytes([fc | 0x80, self.exception])
        handler = self._handlers.get(fc)
        if handler is None:
            return bytes([fc | 0x80, _ILLEGAL_FUNCTION])
        try:
            out = handler(self, pdu)
        except struct.error:  # a PDU too short for its function
            return bytes([fc | 0x80, _ILLEGAL_VALUE])
        if isinstance(out, int):
            return bytes([fc | 0x80, out])
        return out

    def _read_registers(self, pdu: bytes) -> bytes | int:
        address, count = struct.unpack_from(">HH", pdu, 1)
        if not 1 <= count <= _MAX_READ_REGISTERS:
            return _ILLEGAL_VALUE
        if address + count > len(self.registers):
            return _ILLEGAL_ADDRESS
        out = struct.pack(f">BB{count}H", 3, 2 * count, *self.registers[address : address + count])
        self.reads += 1
        every = self.config.advance_every_reads
        if every is not None and self.reads % every == 0:
            self.change()  # after the answer was taken: the next request sees the next state
        return out

    def _read_coils(self, pdu: bytes) -> bytes | int:
        address, count = struct.unpack_from(">HH", pdu, 1)
        if not 1 <= count <= _MAX_READ_BITS:
            return _ILLEGAL_VALUE
        if address + count > len(self.coils):
            return _ILLEGAL_ADDRESS
        return bytes([1]) + _pack_bits(self.coils[address : address + count])

    def _command_range(self, address: int, count: int) -> bool:
        return self._values_end <= address and address + count <= len(self.registers)

    def _write_register(self, pdu: bytes) -> bytes | int:
        address, value = struct.unpack_from(">HH", pdu, 1)
        if not self._command_range(address, 1):
            return _ILLEGAL_ADDRESS
        self.registers[address] = value
        return pdu[:5]

    def _write_registers(self, pdu: bytes) -> bytes | int:
        address, count, size = struct.unpack_from(">HHB", pdu, 1)
        if not 1 <= count <= _MAX_WRITE_REGISTERS or size != 2 * count or len(pdu) != 6 + size:
            return _ILLEGAL_VALUE
        if not self._command_range(address, count):
            return _ILLEGAL_ADDRESS
        self.registers[address : address + count] = struct.unpack_from(f">{count}H", pdu, 6)
        return pdu[:5]

    def _write_coil(self, pdu: bytes) -> bytes | int:
        address, value = struct.unpack_from(">HH", pdu, 1)
        if value not in (0xFF00, 0x0000):
            return _ILLEGAL_VALUE
        if address >= len(self.coils):
            return _ILLEGAL_ADDRESS
        self.coils[address] = value == 0xFF00
        return pdu[:5]

    def _write_coils(self, pdu: bytes) -> bytes | int:
        address, count, size = struct.unpack_from(">HHB", pdu, 1)
        if not 1 <= count <= _MAX_WRITE_BITS or size != (count + 7) // 8 or len(pdu) != 6 + size:
            return _ILLEGAL_VALUE
        if address + count > len(self.coils):
            return _ILLEGAL_ADDRESS
        data = pdu[6:]
        for i in range(count):
            self.coils[address + i] = bool(data[i // 8] >> (i % 8) & 1)
        return pdu[:5]

    _handlers: ClassVar[dict[int, Callable[[FarmDevice, bytes], bytes | int]]] = {
        1: _read_coils,
        3: _read_registers,
        5: _write_coil,
        6: _write_register,
        15: _write_coils,
        16: _write_registers,
    }


def _pack_bits(bits: list[bool]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes([len(out)]) + bytes(out)


class _MbapProtocol(asyncio.Protocol):
    """Modbus TCP framing (MBAP header: transaction, protocol 0, length, unit) for one device."""

    def __init__(self, device: FarmDevice, connections: set[asyncio.Transport]) -> None:
        self._device = device
        self._connections = connections
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._connections.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        transport = self._transport
        assert transport is not None
        while len(buf) >= 7:
            tid, protocol, length, unit = struct.unpack_from(">HHHB", buf)
            if protocol != 0 or not 2 <= length <= 254:  # not Modbus TCP: drop the peer
                log.warning("modbus farm device %d: bad MBAP header, closing", self._device.index)
                transport.close()
                buf.clear()
                return
            if len(buf) < 6 + length:
                return
            pdu = bytes(buf[7 : 6 + length])
            del buf[: 6 + length]
            resp = self._device.handle(unit, pdu)
            transport.write(struct.pack(">HHHB", tid, 0, len(resp) + 1, unit) + resp)


class ModbusFarmSim:
    """A running farm (see the module docstring). ``clock`` gives Unix seconds (tests inject
    one); the default is :func:`time.time`, since consumers in other processes compare
    ``changed_ms`` with their own wall clock."""

    def __init__(self, config: ModbusFarmSimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.devices = [FarmDevice(d, config, clock) for d in range(config.devices)]
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Transport] = set()
        self._ports: list[int] = []
        self._ticker: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The first device's port (the bound one once started)."""
        return self._ports[0] if self._ports else self.config.port

    @property
    def ports(self) -> list[int]:
        """Every device's port, by device index (once started)."""
        return list(self._ports)

    async def start(self) -> None:
        if self._servers:
            raise RuntimeError("modbus farm already started")
        loop = asyncio.get_running_loop()
        try:
            for dev in self.devices:
                port = 0 if self.config.port == 0 else self.config.port + dev.index
                server = await loop.create_server(
                    lambda dev=dev: _MbapProtocol(dev, self._connections),  # type: ignore[misc]
                    self.config.host,
                    port,
                )
                self._servers.append(server)
                self._ports.append(int(server.sockets[0].getsockname()[1]))
        except BaseException:
            await self.stop()
            raise
        if self.config.period_ms > 0:
            self._ticker = asyncio.create_task(self._tick(), name=f"modbus-farm-{self.config.id}")
        log.info(
            "modbus farm %r: %d devices x %d registers every %d ms on %s ports %d..%d",
            self.config.id,
            len(self.devices),
            self.config.registers,
            self.config.period_ms,
            self.config.host,
            min(self._ports),
            max(self._ports),
        )

    async def stop(self) -> None:
        """Stop changing, close every listener and connection. Never hangs."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.wait([ticker], timeout=2.0)
        for server in self._servers:
            server.close()
        for transport in list(self._connections):
            transport.abort()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2.0)
            except TimeoutError:
                log.warning("modbus farm %r: a listener did not close in time", self.config.id)
        self._servers.clear()
        self._ports.clear()

    def set_exception(self, code: int | None) -> None:
        """While set, every device answers every request with Modbus exception ``code``."""
        for dev in self.devices:
            dev.exception = code

    async def _tick(self) -> None:
        period = self.config.period_ms / 1000
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += period
            await asyncio.sleep(max(0.0, due - loop.time()))
            if due < loop.time() - period:  # stalled: skip what was missed, never burst
                due = loop.time()
            for dev in self.devices:
                dev.change()


def farm_devices(
    ports: list[int],
    registers: int,
    *,
    host: str = "127.0.0.1",
    id_prefix: str = "farm",
    poll_interval_ms: int = 100,
    unit_id: int = 1,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The tag map (``devices:`` entries, as YAML would hold them) of a farm's devices: one
    Modbus device per port, with tags ``changed_ms`` (uint64) and ``v0`` … ``v{T-1}`` (uint16),
    ``changed_ms`` as the snapshot counter. ``extra`` is merged into each entry (e.g.
    ``{"telemetry": {"tags": "all"}}``)."""
    tags: dict[str, Any] = {
        "changed_ms": {"table": "holding_register", "address": 0, "type": "uint64"}
    }
    for i in range(registers):
        tags[f"v{i}"] = {
            "table": "holding_register",
            "address": FARM_HEADER_REGISTERS + i,
            "type": "uint16",
        }
    return [
        {
            "id": f"{id_prefix}{d}",
            "driver": "modbus",
            "connection": {"type": "tcp", "host": host, "port": port},
            "unit_id": unit_id,
            "poll_interval_ms": poll_interval_ms,
            "byte_order": "big",
            "word_order": "big",
            "max_block_registers": _MAX_READ_REGISTERS,
            "snapshot": {"counter": "changed_ms"},
            "tags": {name: dict(spec) for name, spec in tags.items()},
            **copy.deepcopy(extra or {}),
        }
        for d, port in enumerate(ports)
    ]


MODBUS_FARM = SimulatorSpec(
    name="modbus_farm",
    config_model=ModbusFarmSimConfig,
    create=ModbusFarmSim,
    description="Load-test farm: D Modbus TCP devices (a port each) x T holding registers, all "
    "changing every period_ms; registers 0-3 the uint64 ms time of the last change "
    "(read-to-MQTT latency); command registers and coils take writes (FC 5/6/15/16).",
)
