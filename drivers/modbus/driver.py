"""The Modbus driver: polls one device over TCP or RTU with pymodbus's asyncio clients.

pymodbus's own reconnect loop and retries are switched off (``reconnect_delay=0``,
``retries=0``): the gateway's supervisor owns reconnecting with backoff. After any link failure
the driver closes its client, so ``read()`` keeps raising :class:`DeviceOffline` until the
supervisor calls ``connect()`` again.

RTU devices on one serial port share one link (:mod:`drivers.modbus.bus`): ``connect()`` joins
the port's bus, a request waits for the device's turn (round-robin between devices) and for its
own ``timeout_ms``; after a failure the driver leaves the bus (the last one out closes the port)
and a time-out makes only this device offline.

Consistent readings: when a device's tags need several requests (coils and registers, or
several blocks), a device may make a new record between two of them, and a reading would pair
the reject coil of one weighing with the count of the next. With a ``snapshot`` counter the
driver reads the counter's block first, then the others, then the counter's block again; when
the counter moved, the others are read again (``snapshot.retries`` times), and when it never
held still the poll is skipped (no reading; ``snapshot_skipped``), and after
``snapshot.max_skipped`` skipped polls in a row ``read()`` raises :class:`DeviceFault`.

Writes (:meth:`ModbusDriver.write`, for MES command maps): a ``writable`` coil with FC 5 (or
15), a holding-register tag with FC 6 for one register or FC 16 for wider types (int32 … string).
pymodbus serialises the requests of one client, so a write may run while a poll is under way;
it lands between two of the poll's requests.

Failure mapping::

    exception response (resp.isError())            -> DeviceFault (code, function, range, unit)
    no response / link lost / refused / OS error   -> DeviceOffline
    NaN, out of range, undecodable value            -> Reading.errors[tag]
    write: unknown / read-only tag, value that does
      not fit the type, range or scaling exactly   -> WriteRejected (nothing sent)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.base import DeviceFault, DeviceOffline, Reading, TagValue, WriteRejected
from drivers.modbus import bus as buses
from drivers.modbus.blocks import Block, TagSlot, plan_blocks
from drivers.modbus.codec import DecodeError, TagDecoder, compile_decoder, encode_tag
from drivers.modbus.config import (
    BIT_TABLES,
    ModbusDeviceConfig,
    TcpConnection,
    register_count,
    write_function,
)
from drivers.ticker import PollTicker

__all__ = ["EXCEPTION_CODES", "ModbusDriver", "PollTicker"]

log = logging.getLogger(__name__)

#: Modbus exception codes and their names in the Modbus application protocol spec.
EXCEPTION_CODES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

_FUNCTIONS: dict[str, tuple[int, str]] = {
    "coil": (1, "read coils"),
    "discrete_input": (2, "read discrete inputs"),
    "holding_register": (3, "read holding registers"),
    "input_register": (4, "read input registers"),
}
_WRITE_NAMES: dict[int, str] = {
    5: "write single coil",
    6: "write single register",
    15: "write multiple coils",
    16: "write multiple registers",
}

_READ_METHODS: dict[str, str] = {
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
    "holding_register": "read_holding_registers",
    "input_register": "read_input_registers",
}

_Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class ModbusDriver:
    """A :class:`drivers.base.Driver` for one Modbus device (one unit id on one link)."""

    #: a poll proves the link, a connection does not (drivers/base.py)
    online_after_first_read = True

    def __init__(self, config: ModbusDeviceConfig) -> None:
        self.config = config
        self.blocks: list[Block] = plan_blocks(
            config.tags,
            max_registers=config.max_block_registers,
            max_gap=config.max_block_gap,
        )
        self._snapshot = _counter_slot(config, self.blocks)
        # per block: (tag, first entry, end, decoder), worked out once for every poll
        self._decoders: list[list[tuple[str, int, int, TagDecoder]]] = [
            [
                (
                    slot.name,
                    slot.offset,
                    slot.offset + slot.count,
                    compile_decoder(
                        config.tags[slot.name],
                        byte_order=config.byte_order,
                        word_order=config.word_order,
                    ),
                )
                for slot in block.tags
            ]
            for block in self.blocks
        ]
        self.snapshot_retried = 0  # polls read again because the counter moved
        self.snapshot_skipped = 0  # polls that gave no consistent reading
        self._skipped_in_row = 0
        self._timeout = config.timeout_ms / 1000
        self._ticker = PollTicker(config.poll_interval_ms / 1000)
        self._client: _Client | None = None  # TCP: our own client
        self._bus: buses.SerialBus | None = None  # RTU: the port's shared link, while attached
        conn = config.connection
        self._where = (
            f"tcp {conn.host}:{conn.port}"
            if isinstance(conn, TcpConnection)
            else f"rtu {conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"
        )

    def __repr__(self) -> str:
        return f"ModbusDriver({self.config.id!r}, {self._where}, unit {self.config.unit_id})"

    def _new_client(self, conn: TcpConnection) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            conn.host,
            port=conn.port,
            name=f"saltgw-{self.config.id}",
            timeout=self._timeout,
            retries=0,
            reconnect_delay=0,
        )

    async def connect(self) -> None:
        """Open the link; raise :class:`DeviceOffline` when the device cannot be reached. An
        RTU device joins its port's shared bus (drivers/modbus/bus.py), opening the port if
        it is the first; it is online only once a read is answered."""
        await self.close()
        conn = self.config.connection
        if not isinstance(conn, TcpConnection):
            bus = buses.join(conn)
            await bus.attach(self.config.id, self.config.unit_id, conn, self._timeout)
            self._bus = bus
            self._ticker.reset()
            log.info("device %r joined %s as unit %d", self.config.id, bus, self.config.unit_id)
            return
        client = self._new_client(conn)
        try:
            ok = await asyncio.wait_for(client.connect(), self._timeout + 1.0)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok = False
            reason = f": {exc}"
        else:
            reason = "" if ok else " (refused, unreachable or timed out)"
        if not ok:
            _close_quietly(client)
            raise DeviceOffline(
                f"cannot connect to modbus {self._where} within {self.config.timeout_ms} ms{reason}"
            )
        self._client = client
        self._ticker.reset()
        log.info("connected to %s for device %r", self._where, self.config.id)

    @property
    def _linked(self) -> bool:
        """Whether a request can be sent now (our client, or the bus's port, is open)."""
        if self._bus is not None:
            return self._bus.connected
        return self._client is not None and self._client.connected

    async def read(self) -> Reading:
        """Wait for the next poll tick, read every block and decode every tag."""
        if self._client is None and self._bus is None:
            raise DeviceOffline(f"not connected to modbus {self._where}")
        if not self._linked:
            await self.close()
            raise DeviceOffline(f"link to modbus {self._where} lost (closed by the device)")
        await self._ticker.wait()
        while (blocks := await self._poll()) is None:
            await self._ticker.wait()
        values: dict[str, TagValue] = {}
        errors: dict[str, str] = {}
        for decoders, data in zip(self._decoders, blocks, strict=True):
            for name, start, end, decode in decoders:
                try:
                    values[name] = decode(data[start:end])
                except DecodeError as exc:
                    errors[name] = str(exc)
        return Reading(device=self.config.id, ts=datetime.now(UTC), values=values, errors=errors)

    async def _poll(self) -> list[Sequence[int] | Sequence[bool]] | None:
        """The data of every block, from one state of the device; None: the snapshot counter
        moved during every try (the poll is skipped)."""
        if self._snapshot is None:
            return [await self._read_block(block) for block in self.blocks]
        where, slot = self._snapshot
        snap = self.config.snapshot
        assert snap is not None
        out: list[Sequence[int] | Sequence[bool]] = [()] * len(self.blocks)
        out[where] = await self._read_block(self.blocks[where])
        for attempt in range(snap.retries + 1):
            for i, block in enumerate(self.blocks):
                if i != where:
                    out[i] = await self._read_block(block)
            again = await self._read_block(self.blocks[where])
            before = out[where][slot.offset : slot.offset + slot.count]
            moved = list(again[slot.offset : slot.offset + slot.count]) != list(before)
            out[where] = again
            if not moved:
                self._skipped_in_row = 0
                return out
            if attempt < snap.retries:
                self.snapshot_retried += 1
        self.snapshot_skipped += 1
        self._skipped_in_row += 1
        what = f"counter {snap.counter!r} moved during each of {snap.retries + 1} tries of a poll"
        if self._skipped_in_row >= snap.max_skipped:
            self._skipped_in_row = 0
            raise DeviceFault(
                f"no consistent reading of modbus {self._where}: {what}, "
                f"{snap.max_skipped} polls in a row (poll faster, or read its tags in one block)"
            )
        log.warning("device %r: poll skipped, %s", self.config.id, what)
        return None

    async def close(self) -> None:
        """Release the link. Never raises."""
        client, self._client = self._client, None
        if client is not None:
            _close_quietly(client)
        bus, self._bus = self._bus, None
        if bus is not None:
            await bus.detach(self.config.id)

    async def _read_block(self, block: Block) -> Sequence[int] | Sequence[bool]:
        unit = self.config.unit_id
        fcode, fname = _FUNCTIONS[block.table]
        what = f"{block.table} {block.address}..{block.last} from unit {unit}"
        method = _READ_METHODS[block.table]

        def send(client: _Client) -> Awaitable[ModbusPDU]:
            call: Callable[..., Awaitable[ModbusPDU]] = getattr(client, method)
            return call(block.address, count=block.count, device_id=unit)

        resp = await self._request(send, f"reading {what}", fcode, fname)
        if block.table in BIT_TABLES:
            data: Sequence[int] | Sequence[bool] = resp.bits
        else:
            data = resp.registers
        if len(data) < block.count:
            raise DeviceFault(
                f"short response reading {what}: {len(data)} of {block.count} values "
                f"(function {fcode}, {fname})"
            )
        return data[: block.count]

    # -- writing -------------------------------------------------------------------------------
    async def write(self, tag: str, value: TagValue) -> None:
        """Write ``value`` to a ``writable`` tag (drivers.base.WritableDriver): converted to
        the tag's type, scaling undone; returns once the device acknowledged it."""
        cfg = self.config
        spec = cfg.tags.get(tag)
        if spec is None:
            raise WriteRejected(
                f"device {cfg.id!r} has no tag {tag!r} (tags: {', '.join(sorted(cfg.tags))})"
            )
        if not spec.writable:
            why = (
                f"a {spec.table} is read-only in Modbus"
                if spec.table in ("input_register", "discrete_input")
                else "its tag map entry does not say writable: true"
            )
            raise WriteRejected(f"tag {tag!r} of device {cfg.id!r} is not writable ({why})")
        try:
            payload = encode_tag(value, spec, byte_order=cfg.byte_order, word_order=cfg.word_order)
        except ValueError as exc:
            raise WriteRejected(
                f"cannot write {value!r} to tag {tag!r} ({spec.type}) of device {cfg.id!r}: {exc}"
            ) from None
        unit = cfg.unit_id
        fcode = write_function(spec)
        last = spec.address + register_count(spec) - 1
        what = f"{spec.table} {spec.address}..{last} of unit {unit}"
        address = spec.address

        def send(client: _Client) -> Awaitable[ModbusPDU]:
            if isinstance(payload, bool):
                if fcode == 15:
                    return client.write_coils(address, [payload], device_id=unit)
                return client.write_coil(address, payload, device_id=unit)
            if fcode == 6:
                return client.write_register(address, payload[0], device_id=unit)
            return client.write_registers(address, payload, device_id=unit)

        await self._request(send, f"writing {what}", fcode, _WRITE_NAMES[fcode])
        log.info("device %s: wrote %r to %s (function %d)", cfg.id, value, what, fcode)

    async def _request(
        self, send: Callable[[_Client], Awaitable[ModbusPDU]], what: str, fcode: int, fname: str
    ) -> ModbusPDU:
        """Send one request; map a lost link to DeviceOffline (closing the client, or leaving
        the bus) and an exception response to DeviceFault naming the function code and the
        address range. On a shared RTU bus the request waits for this device's turn."""
        bus, client = self._bus, self._client
        try:
            if bus is not None:
                resp: ModbusPDU = await bus.request(self.config.id, self._timeout, send)
            elif client is not None:
                resp = await asyncio.wait_for(send(client), 2 * self._timeout + 1.0)
            else:  # closed by a failure earlier in this poll
                raise DeviceOffline(f"not connected to modbus {self._where}")
        except ConnectionException as exc:
            await self.close()
            raise DeviceOffline(f"link to modbus {self._where} lost {what}: {exc}") from exc
        except ModbusIOException as exc:
            await self.close()
            raise DeviceOffline(
                f"no valid response from modbus {self._where} within {self.config.timeout_ms} ms "
                f"{what}: {exc}"
            ) from exc
        except TimeoutError as exc:
            await self.close()
            raise DeviceOffline(
                f"no response from modbus {self._where} {what} (gave up after "
                f"{2 * self.config.timeout_ms + 1000} ms)"
            ) from exc
        except OSError as exc:
            await self.close()
            raise DeviceOffline(f"I/O error on modbus {self._where} {what}: {exc}") from exc
        except ModbusException as exc:
            raise DeviceFault(f"modbus error {what} (function {fcode}, {fname}): {exc}") from exc
        if resp.isError():
            code = resp.exception_code
            meaning = EXCEPTION_CODES.get(code, "unknown exception code")
            raise DeviceFault(
                f"modbus exception {code} ({meaning}) {what} (function {fcode}, {fname})"
            )
        return resp


def _counter_slot(config: ModbusDeviceConfig, blocks: list[Block]) -> tuple[int, TagSlot] | None:
    """The block holding the snapshot counter and its slot; None when no guard is needed (no
    counter configured, or every tag comes in one request)."""
    if config.snapshot is None or len(blocks) < 2:
        return None
    for i, block in enumerate(blocks):
        for slot in block.tags:
            if slot.name == config.snapshot.counter:
                return i, slot
    raise ValueError(f"snapshot counter {config.snapshot.counter!r} is not a tag")


def _close_quietly(client: _Client) -> None:
    try:
        client.close()
    except Exception as exc:  # close() must never raise; a failing close is only noise
        log.debug("closing modbus client %s failed: %s", client, exc)
