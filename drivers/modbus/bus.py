"""One Modbus RTU link per serial port, shared by every device on it (an RS-485 daisy chain:
checkweigher, metal detector and doser on one USB adapter).

A serial port can be opened once (pyserial locks it, ``exclusive=True``), and RTU is
master/slave on a half-duplex line: one request, then its answer (or its time-out), then the next
request. So the devices whose ``connection`` is RTU on the same port share one
:class:`SerialBus`, owned by the drivers that use it (:func:`join`):

* the port is opened by the first device that connects, re-opened once for everybody after the
  link failed (the first device to reconnect opens it, the others find it open), and closed when
  the last device leaves;
* requests are **serialised** across unit ids and served **round-robin** between devices: each
  device waiting for the line gets one request before any device gets a second, so one busy
  poller (or a device retrying a dead slave) cannot starve the others;
* each request waits for its answer for its own device's ``timeout_ms``; a time-out is that
  device's failure (it goes offline, the port stays open for the others). After a time-out the
  bus waits until the line has been quiet for :data:`QUIET_S` (bounded by :data:`MAX_DRAIN_S`)
  and forgets what arrived, so a slave answering late does not land in the next unit's answer.

pymodbus is imported by :mod:`drivers.modbus.driver`, which creates the buses; this module only
needs it for types and exceptions.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerType

from drivers.base import DeviceFault, DeviceOffline
from drivers.modbus.config import RtuConnection
from drivers.modbus.ports import bus_key, serial_settings

__all__ = ["MAX_DRAIN_S", "QUIET_S", "SerialBus", "join"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: after a time-out, the line must be quiet this long before the next request (a late answer
#: of the slave that timed out is read and dropped meanwhile)
QUIET_S = 0.05
#: ... but the bus never waits longer than this for the quiet (a babbling line)
MAX_DRAIN_S = 0.5


class _Turns:
    """A lock handed on round-robin between keys: a key waiting for its turn is served before
    any key is served twice. Cancellation-safe."""

    def __init__(self) -> None:
        self._busy = False
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._ring: deque[str] = deque()

    async def acquire(self, key: str) -> None:
        if not self._busy:
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, deque()).append(fut)
        if key not in self._ring:
            self._ring.append(key)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # the turn was ours: hand it on
                self.release()
            raise

    def release(self) -> None:
        while self._ring:
            key = self._ring.popleft()
            queue = self._queues[key]
            fut = queue.popleft()
            if queue:
                self._ring.append(key)  # its next request waits for everybody else's
            else:
                del self._queues[key]
            if not fut.done():
                fut.set_result(None)
                return
        self._busy = False


class SerialBus:
    """The shared link of one serial port (see the module docstring)."""

    def __init__(self, conn: RtuConnection, key: str) -> None:
        self.conn = conn
        self.key = key
        self.where = f"rtu {conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"
        self.members: dict[str, int] = {}  # device id -> unit id
        self.opened = 0  # how often the port was opened
        self.requests = 0
        self.timeouts = 0
        self._client: AsyncModbusSerialClient | None = None
        self._turns = _Turns()
        self._open_lock = asyncio.Lock()
        self._last_rx = 0.0

    def __repr__(self) -> str:
        return f"SerialBus({self.where}, devices {sorted(self.members)})"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # -- membership ------------------------------------------------------------------------------
    def _admit(self, device: str, unit: int, conn: RtuConnection) -> None:
        if serial_settings(conn) != serial_settings(self.conn):
            others = ", ".join(sorted(self.members))
            raise DeviceFault(
                f"device {device!r} wants {conn.port} at {_settings_text(conn)}, but "
                f"{others} use it at {_settings_text(self.conn)}: devices on one port must "
                "agree on baudrate, bytesize, parity and stopbits"
            )
        for other, other_unit in self.members.items():
            if other != device and other_unit == unit:
                raise DeviceFault(
                    f"device {device!r} and {other!r} both use unit id {unit} on {conn.port}"
                )
        self.members[device] = unit

    async def attach(self, device: str, unit: int, conn: RtuConnection, wait_s: float) -> None:
        """Add ``device`` (unit ``unit``) to the bus and make sure the port is open; raise
        :class:`DeviceOffline` when it cannot be opened (the device stays off the bus)."""
        self._admit(device, unit, conn)
        try:
            await self._ensure_open(wait_s)
        except BaseException:
            self.members.pop(device, None)
            self._forget_if_empty()
            raise

    async def detach(self, device: str) -> None:
        """Take ``device`` off the bus; the last one out closes the port. Never raises."""
        self.members.pop(device, None)
        if not self.members:
            self._drop_client()
            self._forget_if_empty()

    def _forget_if_empty(self) -> None:
        if not self.members and _BUSES.get(self.key) is self:
            del _BUSES[self.key]

    async def _ensure_open(self, wait_s: float) -> None:
        async with self._open_lock:  # the devices reconnecting at once open the port once
            if self.connected:
                return
            self._drop_client()
            conn = self.conn
            client = AsyncModbusSerialClient(
                conn.port,
                framer=FramerType.RTU,
                name=f"saltgw-bus-{conn.port}",
                baudrate=conn.baudrate,
                bytesize=conn.bytesize,
                parity=conn.parity,
                stopbits=conn.stopbits,
                timeout=wait_s,
                retries=0,
                reconnect_delay=0,
                trace_packet=self._trace,
            )
            try:
                ok = await asyncio.wait_for(client.connect(), wait_s + 1.0)
            except (TimeoutError, OSError, ConnectionException) as exc:
                ok, reason = False, f": {exc}"
            except Exception as exc:  # pyserial: termios.error for settings the tty refuses
                ok, reason = False, f": {type(exc).__name__} {exc} (serial settings refused?)"
            else:
                reason = "" if ok else " (no such port, busy or no permission)"
            if not ok:
                _close_quietly(client)
                raise DeviceOffline(f"cannot open modbus {self.where}{reason}")
            self._client = client
            self.opened += 1
            log.info("opened %s for %s", self.where, ", ".join(sorted(self.members)))

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)
            log.info("closed %s", self.where)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._last_rx = asyncio.get_running_loop().time()
        return data

    # -- requests --------------------------------------------------------------------------------
    async def request(
        self,
        device: str,
        answer_s: float,
        call: Callable[[AsyncModbusSerialClient], Awaitable[T]],
    ) -> T:
        """Run ``call(client)`` — one request — in ``device``'s turn, waiting ``answer_s`` for
        the answer. pymodbus exceptions pass through; a lost port (ConnectionException,
        OSError) also closes the client, so the next device to connect re-opens it."""
        await self._turns.acquire(device)
        try:
            client = self._client
            if client is None or not client.connected:
                raise ConnectionException(f"{self.conn.port} is not open")
            # pymodbus reads its response time-out from here on every request (one client,
            # a time-out per device)
            client.ctx.comm_params.timeout_connect = answer_s
            self.requests += 1
            try:
                return await asyncio.wait_for(call(client), 2 * answer_s + 1.0)
            except (ModbusIOException, TimeoutError):
                self.timeouts += 1
                await self._drain(client)
                raise
            except (ConnectionException, OSError):
                self._drop_client()
                raise
        finally:
            self._turns.release()

    async def _drain(self, client: AsyncModbusSerialClient) -> None:
        """Wait until nothing arrived for QUIET_S (at most MAX_DRAIN_S), then forget it."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            quiet_since = max(self._last_rx, start)
            wait = quiet_since + QUIET_S - loop.time()
            if wait <= 0 or loop.time() - start >= MAX_DRAIN_S:
                break
            await asyncio.sleep(min(wait, MAX_DRAIN_S))
        client.ctx.recv_buffer = b""


def _settings_text(conn: RtuConnection) -> str:
    return f"{conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"


def _close_quietly(client: AsyncModbusSerialClient) -> None:
    try:
        client.close()
    except Exception as exc:  # close() must never raise; a failing close is only noise
        log.debug("closing modbus client %s failed: %s", client, exc)


_BUSES: dict[str, SerialBus] = {}


def join(conn: RtuConnection) -> SerialBus:
    """The bus of ``conn``'s port (created on first use; forgotten when its last device
    leaves). Call :meth:`SerialBus.attach` next."""
    key = bus_key(conn.port)
    bus = _BUSES.get(key)
    if bus is None or (not bus.members and bus._client is None):
        bus = _BUSES[key] = SerialBus(conn, key)
    return bus
