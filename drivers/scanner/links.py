"""Byte links to a scanner: TCP client, TCP server (the scanner connects to us) and serial.

Each link's ``recv(wait_secs)`` returns bytes, ``None`` when nothing came within ``wait_secs``
seconds, and raises :class:`DeviceOffline` when the link is gone (closed by the peer, I/O
error). Nothing here retries: the gateway's supervisor reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol

import serial

from drivers.base import DeviceOffline
from drivers.scanner.config import (
    ScannerSerialLink,
    ScannerTcpClientLink,
    ScannerTcpServerLink,
)

__all__ = ["ByteLink", "SerialLink", "StreamLink", "TcpListener", "open_tcp", "where"]

log = logging.getLogger(__name__)

CHUNK = 4096
_SERIAL_POLL_SECS = 0.1


class ByteLink(Protocol):
    async def recv(self, wait_secs: float | None) -> bytes | None: ...

    async def close(self) -> None: ...


def where(conn: ScannerTcpClientLink | ScannerTcpServerLink | ScannerSerialLink) -> str:
    """The link for messages: ``tcp 10.0.0.5:2001``, ``listening on 0.0.0.0:2001``, …"""
    if isinstance(conn, ScannerTcpClientLink):
        return f"tcp {conn.host}:{conn.port}"
    if isinstance(conn, ScannerTcpServerLink):
        return f"tcp server {conn.listen_host}:{conn.port}"
    return f"serial {conn.port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"


class StreamLink:
    """A connected TCP stream (either direction)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, what: str):
        self.reader, self.writer, self.what = reader, writer, what
        self.closed = asyncio.Event()

    async def recv(self, wait_secs: float | None) -> bytes | None:
        try:
            data = await asyncio.wait_for(self.reader.read(CHUNK), wait_secs)
        except TimeoutError:
            return None
        except OSError as exc:
            raise DeviceOffline(f"I/O error on {self.what}: {exc}") from exc
        if not data:
            raise DeviceOffline(f"{self.what}: connection closed by the scanner")
        return data

    async def close(self) -> None:
        self.closed.set()
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def open_tcp(conn: ScannerTcpClientLink, connect_secs: float) -> StreamLink:
    what = where(conn)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(conn.host, conn.port), connect_secs
        )
    except TimeoutError as exc:
        raise DeviceOffline(f"cannot connect to scanner {what} within {connect_secs:g} s") from exc
    except OSError as exc:
        raise DeviceOffline(f"cannot connect to scanner {what}: {exc.strerror or exc}") from exc
    return StreamLink(reader, writer, what)


class TcpListener:
    """Listens for the scanner; the newest connection wins (a rebooted scanner reconnects
    before we noticed the old socket died, so an older connection is closed)."""

    def __init__(self, conn: ScannerTcpServerLink) -> None:
        self.conn = conn
        self.what = where(conn)
        self._server: asyncio.Server | None = None
        self._arrived: asyncio.Queue[StreamLink] = asyncio.Queue()
        self._current: StreamLink | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        if self._server is None:
            return self.conn.port
        return int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        link = StreamLink(reader, writer, f"{self.what} (scanner {peer[0]}:{peer[1]})")
        log.info("scanner connected from %s:%s to %s", peer[0], peer[1], self.what)
        old, self._current = self._current, link
        if old is not None:
            await old.close()
        await self._arrived.put(link)
        await link.closed.wait()  # keep the handler alive as long as the connection

    async def accept(self, wait_secs: float) -> StreamLink:
        if self._server is None:
            try:
                self._server = await asyncio.start_server(
                    self._handle, self.conn.listen_host, self.conn.port, reuse_address=True
                )
            except OSError as exc:
                raise DeviceOffline(f"cannot listen on {self.what}: {exc.strerror}") from exc
        deadline = time.monotonic() + wait_secs
        while True:
            left = deadline - time.monotonic()
            try:
                link = await asyncio.wait_for(self._arrived.get(), max(left, 0.0))
            except TimeoutError as exc:
                raise DeviceOffline(
                    f"no scanner connected to {self.what} within {wait_secs:g} s"
                ) from exc
            if not link.closed.is_set():
                return link

    async def close(self) -> None:
        server, self._server = self._server, None
        if self._current is not None:
            await self._current.close()
            self._current = None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)


class SerialLink:
    """A pyserial port (or URL) read in short blocking slices on a worker thread."""

    def __init__(self, port: Any, what: str) -> None:
        self.port = port
        self.what = what

    @classmethod
    async def open(cls, conn: ScannerSerialLink, open_secs: float) -> SerialLink:
        what = where(conn)

        def _open() -> Any:
            return serial.serial_for_url(
                conn.port,
                baudrate=conn.baudrate,
                bytesize=conn.bytesize,
                parity=conn.parity,
                stopbits=conn.stopbits,
                timeout=_SERIAL_POLL_SECS,
            )

        try:
            port = await asyncio.wait_for(asyncio.to_thread(_open), open_secs)
        except TimeoutError as exc:
            raise DeviceOffline(f"cannot open scanner {what} within {open_secs:g} s") from exc
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceOffline(f"cannot open scanner {what}: {exc}") from exc
        return cls(port, what)

    def _read_slice(self) -> bytes:
        """Up to ~0.1 s: the first byte, then whatever else is already waiting."""
        data = bytearray(self.port.read(1))
        while data and len(data) < CHUNK:
            waiting = self.port.in_waiting
            if not waiting:
                break
            data += self.port.read(min(waiting, CHUNK - len(data)))
        return bytes(data)

    async def recv(self, wait_secs: float | None) -> bytes | None:
        deadline = None if wait_secs is None else time.monotonic() + wait_secs
        while True:
            try:
                data = await asyncio.to_thread(self._read_slice)
            except (serial.SerialException, OSError) as exc:
                raise DeviceOffline(f"{self.what}: {exc}") from exc
            if data:
                return data
            if deadline is not None and time.monotonic() >= deadline:
                return None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.port.close)
