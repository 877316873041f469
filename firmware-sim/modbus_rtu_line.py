"""A simulated RS-485 line: several Modbus RTU slaves (a checkweigher, a metal detector, an
iodine doser…) daisy-chained on ONE serial line, served on one side of a pseudo-terminal pair.

The line opens a pty pair (``os.openpty()``) and serves the master side; the gateway opens the
other side as its serial port: :attr:`ModbusRtuLineSim.tty` (``/dev/pts/N``), or the symlink
``link`` names (e.g. ``/tmp/saltgw-rs485``) so a map can name a fixed path. The pty ignores
baud rate and parity: the gateway's serial settings are accepted whatever they are.

Each slave is one of the Modbus simulators (``checkweigher``, ``metal_detector``,
``iodine_doser``) with its own unit id, its register map and production loops unchanged (see
their modules); it answers "read holding registers" (FC 3) — and "read coils" (FC 1) for a
checkweigher with ``reject_coil`` — addressed to its unit, after ``turnaround_ms``. As on a
real bus, a request to a unit nobody has, or to a dead slave, gets no answer at all.

Fault knobs: ``dead: [unit, …]`` (silent from the start), :meth:`ModbusRtuLineSim.set_dead`
(stop / start answering), a slave's ``drop(seconds)``, :meth:`ModbusRtuLineSim.set_reply_delay`
(answer late, after the master's time-out) and a slave's ``set_exception_mode``.

What it checks (for tests): RTU is half-duplex master/slave; the master must not send while a
slave is about to answer. A request whose first byte arrives while an answer is pending counts
in :attr:`~ModbusRtuLineSim.overlaps`; :attr:`~ModbusRtuLineSim.silences` records, for every
unanswered request, how long the master waited before its next request; every request is in
:attr:`~ModbusRtuLineSim.requests` (unit, function) in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import tty
from collections import Counter, deque
from typing import Annotated, Literal

from pydantic import Field, model_validator

from firmware_sim.base import SimulatorConfigBase, SimulatorSpec
from firmware_sim.checkweigher import CheckweigherSim, CheckweigherSimConfig
from firmware_sim.iodine_doser import IodineDoserSim, IodineDoserSimConfig
from firmware_sim.metal_detector import MetalDetectorSim, MetalDetectorSimConfig
from firmware_sim.modbus_device import ModbusSimBase

__all__ = ["MODBUS_RTU_LINE", "ModbusRtuLineSim", "ModbusRtuLineSimConfig", "crc16"]

log = logging.getLogger(__name__)

_NO_PORT = Field(default=0, ge=0, le=0, description="Not used: a slave answers on the line.")
#: a partial frame followed by this much silence is dropped (RTU: 3.5 characters; generous)
FRAME_GAP_S = 0.05
HISTORY = 100_000


class RtuCheckweigherConfig(CheckweigherSimConfig):
    """A checkweigher slave on the line."""

    port: int = _NO_PORT


class RtuMetalDetectorConfig(MetalDetectorSimConfig):
    """A metal detector slave on the line."""

    port: int = _NO_PORT


class RtuIodineDoserConfig(IodineDoserSimConfig):
    """An iodine doser slave on the line."""

    port: int = _NO_PORT


RtuSlaveConfig = Annotated[
    RtuCheckweigherConfig | RtuMetalDetectorConfig | RtuIodineDoserConfig,
    Field(discriminator="kind"),
]


class ModbusRtuLineSimConfig(SimulatorConfigBase):
    """Several Modbus RTU slaves on one serial line (a pty the gateway opens)."""

    kind: Literal["modbus_rtu_line"] = Field(description="Selects the RS-485 line simulator.")
    port: int = Field(default=0, ge=0, le=0, description="Not used: the line is a pty.")
    link: str | None = Field(
        default=None,
        min_length=1,
        description="Make this path a symlink to the line's tty (e.g. /tmp/saltgw-rs485), for "
        "the gateway's `connection.port`; removed on stop. None: only logged.",
    )
    slaves: list[RtuSlaveConfig] = Field(
        min_length=1,
        description="The devices on the line, each a checkweigher, metal_detector or "
        "iodine_doser entry (its own `unit_id`; `port` unused).",
    )
    dead: list[int] = Field(
        default_factory=list, description="Unit ids that do not answer from the start."
    )
    turnaround_ms: float = Field(
        default=2.0, ge=0, le=1000, description="A slave answers this long after a request."
    )

    @model_validator(mode="after")
    def _check_units(self) -> ModbusRtuLineSimConfig:
        units = [s.unit_id for s in self.slaves]
        twice = sorted({u for u in units if units.count(u) > 1})
        if twice:
            raise ValueError(f"unit id(s) {twice} used by more than one slave on the line")
        unknown = sorted(set(self.dead) - set(units))
        if unknown:
            raise ValueError(f"dead unit id(s) {unknown} are not slaves of the line ({units})")
        return self


def crc16(frame: bytes | bytearray) -> bytes:
    """The Modbus RTU CRC of ``frame``, as sent (low byte first)."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def _request_length(buf: bytes | bytearray) -> int | None:
    """Length of the request frame at the start of ``buf``; 0: unknown function (garbage);
    None: not enough bytes yet to tell."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (1, 2, 3, 4, 5, 6):
        return 8
    if fc in (15, 16):
        return None if len(buf) < 7 else 9 + buf[6]
    return 0


class ModbusRtuLineSim:
    """A running simulated RS-485 line (see the module docstring)."""

    def __init__(self, config: ModbusRtuLineSimConfig) -> None:
        self.config = config
        self.slaves: dict[int, ModbusSimBase] = {}
        for cfg in config.slaves:
            sim: ModbusSimBase
            if isinstance(cfg, RtuCheckweigherConfig):
                sim = CheckweigherSim(cfg)
            elif isinstance(cfg, RtuMetalDetectorConfig):
                sim = MetalDetectorSim(cfg)
            else:
                sim = IodineDoserSim(cfg)
            sim.serve_tcp = False
            sim.silent = cfg.unit_id in config.dead
            self.slaves[cfg.unit_id] = sim
        self.requests: deque[tuple[int, int]] = deque(maxlen=HISTORY)  # (unit, function)
        self.answered: Counter[int] = Counter()
        self.overlaps = 0  # requests that began while an answer was pending
        self.garbage = 0  # frames dropped: bad CRC, unknown function, cut short
        self.silences: deque[tuple[int, float]] = deque(maxlen=HISTORY)  # (unit, s to next)
        self._delay: dict[int, float] = {}  # unit -> reply delay, s (set_reply_delay)
        self._master: int | None = None
        self._slave: int | None = None
        self._tty = ""
        self._buf = bytearray()
        self._last_rx = 0.0
        self._pending = 0  # answers scheduled, not yet written
        self._unanswered: tuple[int, float] | None = None  # (unit, when) of a silent request
        self._tasks: set[asyncio.Task[None]] = set()

    # --- public API ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """No TCP port (the Simulator protocol): see :attr:`tty`."""
        return 0

    @property
    def tty(self) -> str:
        """The serial device the gateway opens (``/dev/pts/N``); set once started."""
        return self._tty

    def set_dead(self, unit: int, dead: bool = True) -> None:
        """Unit ``unit`` stops answering (dead) or answers again."""
        self.slaves[unit].silent = dead

    def set_reply_delay(self, unit: int, seconds: float | None) -> None:
        """Unit ``unit`` answers ``seconds`` after a request (instead of ``turnaround_ms``),
        e.g. after the master's time-out; None: back to normal."""
        if seconds is None:
            self._delay.pop(unit, None)
        else:
            self._delay[unit] = seconds

    async def start(self) -> None:
        if self._master is not None:
            raise RuntimeError(f"modbus_rtu_line {self.config.id!r} already started")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes as they are
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._tty = os.ttyname(slave)
        if self.config.link is not None:
            _make_link(self._tty, self.config.link)
        for sim in self.slaves.values():
            await sim.start()
        asyncio.get_running_loop().add_reader(master, self._readable)
        log.info(
            "modbus_rtu_line %r on %s%s: units %s%s",
            self.config.id,
            self._tty,
            f" (link {self.config.link})" if self.config.link else "",
            ", ".join(f"{u} {s.kind}" for u, s in sorted(self.slaves.items())),
            f", dead {sorted(self.config.dead)}" if self.config.dead else "",
        )

    async def stop(self) -> None:
        """Stop the slaves, close the pty (and remove the link). Never hangs."""
        for task in list(self._tasks):
            task.cancel()
        for sim in self.slaves.values():
            await sim.stop()
        master, self._master = self._master, None
        slave, self._slave = self._slave, None
        if master is not None:
            asyncio.get_running_loop().remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)
        if self.config.link is not None:
            _remove_link(self._tty, self.config.link)

    # --- the line ------------------------------------------------------------------------------
    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # the line broke: stop reading, say so once
            log.warning("modbus_rtu_line %r: read failed: %s", self.config.id, exc)
            asyncio.get_running_loop().remove_reader(self._master)
            return
        now = asyncio.get_running_loop().time()
        if self._buf and now - self._last_rx > FRAME_GAP_S:
            self.garbage += 1  # a frame cut short: the silence ends it
            self._buf.clear()
        if not self._buf:  # the first byte of a request
            if self._pending:
                self.overlaps += 1
                log.warning(
                    "modbus_rtu_line %r: a request began while an answer was pending",
                    self.config.id,
                )
            if self._unanswered is not None:
                unit, since = self._unanswered
                self.silences.append((unit, now - since))
                self._unanswered = None
        self._last_rx = now
        self._buf += data
        while (size := _request_length(self._buf)) is not None:
            if size == 0 or (
                len(self._buf) >= size
                and crc16(self._buf[: size - 2]) != bytes(self._buf[size - 2 : size])
            ):
                self.garbage += 1
                self._buf.clear()
                return
            if len(self._buf) < size:
                return
            frame = bytes(self._buf[:size])
            del self._buf[:size]
            self._request(frame, now)

    def _request(self, frame: bytes, now: float) -> None:
        unit, fc = frame[0], frame[1]
        self.requests.append((unit, fc))
        sim = self.slaves.get(unit)
        if sim is None or sim.silent:
            self._unanswered = (unit, now)
            return
        pdu = self._answer(sim, fc, frame[2:-2])
        delay = self._delay.get(unit, self.config.turnaround_ms / 1000)
        self._pending += 1
        task = asyncio.create_task(self._send(unit, pdu, delay), name=f"rtu-answer-{unit}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, unit: int, pdu: bytes, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            frame = bytes([unit]) + pdu
            if self._master is not None:
                os.write(self._master, frame + crc16(frame))
                self.answered[unit] += 1
        except OSError as exc:
            log.warning("modbus_rtu_line %r: answer of unit %d lost: %s", self.config.id, unit, exc)
        finally:
            self._pending -= 1

    @staticmethod
    def _answer(sim: ModbusSimBase, fc: int, body: bytes) -> bytes:
        """The response PDU of ``sim`` to function ``fc`` with request data ``body``."""
        if (code := sim.exception_code) is not None:
            return bytes([fc | 0x80, code])
        if fc not in (1, 3) or (fc == 1 and sim.coil_image() is None):
            return bytes([fc | 0x80, 1])  # illegal function
        address, count = struct.unpack(">HH", body[:4])
        if fc == 3:
            if count < 1 or count > 125 or address + count > sim.register_count:
                return bytes([fc | 0x80, 2])  # illegal data address
            regs = sim.registers[address : address + count]
            return bytes([3, 2 * count]) + struct.pack(f">{count}H", *regs)
        if count < 1 or count > 2000 or address + count > 16 * sim.register_count:
            return bytes([fc | 0x80, 2])
        bits = [bool(sim.coil_image()) and address == 0] + [False] * (count - 1)
        packed = bytes(
            sum(1 << j for j in range(8) if i + j < count and bits[i + j])
            for i in range(0, count, 8)
        )
        sim.after_coil_read()
        return bytes([1, len(packed)]) + packed


def _make_link(target: str, link: str) -> None:
    """Point ``link`` at ``target``, replacing an earlier symlink (never a file)."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.islink(link):
            os.unlink(link)
    os.symlink(target, link)


def _remove_link(target: str, link: str) -> None:
    """Remove ``link`` if it still points at ``target``."""
    with contextlib.suppress(OSError):
        if os.path.islink(link) and os.readlink(link) == target:
            os.unlink(link)


MODBUS_RTU_LINE = SimulatorSpec(
    name="modbus_rtu_line",
    config_model=ModbusRtuLineSimConfig,
    create=ModbusRtuLineSim,
    description="An RS-485 line: checkweigher, metal detector and iodine doser slaves (own unit "
    "ids, same register maps) answering Modbus RTU on one pty; dead or late slaves on demand; "
    "counts requests sent while an answer was pending.",
    extra="modbus",
    requires=("pymodbus",),
)
