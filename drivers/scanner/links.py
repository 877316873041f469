"""Byte links to a scanner: TCP client, TCP server (the scanner connects to us) and serial.

Each link's ``recv(wait_secs)`` returns bytes, ``None`` when nothing came within ``wait_secs``
seconds, and raises :class:`DeviceOffline` when the link is gone (closed by the peer, I/O
error). Nothing here retries: the gateway's supervisor reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
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


def _keepalive(sock: socket.socket | None) -> None:
    """TCP keep-alive: a peer gone without a word (a rebooted scanner) is found within ~20 s."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 3), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


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
    """Listens for the scanner and accepts only the scanner (issue 15: any host could connect,
    and the newest connection replaced the scanner's).

    - a connection from an address outside ``allow_peers`` (loopback when none is given) is
      closed at once, unread: logged (rate-limited) and counted in ``refused["not_allowed"]``;
    - while the scanner's connection is alive a second connection, even from an allowed
      address, is closed unread (``refused["busy"]``): nobody can take over the line. A
      rebooted scanner's old connection is found dead by TCP keep-alive (probes after 10 s
      of silence, 3 × 3 s) or by ``idle_timeout_ms``; its next attempt is then accepted.
    """

    def __init__(self, conn: ScannerTcpServerLink) -> None:
        self.conn = conn
        self.what = where(conn)
        self._networks = conn.peer_networks()
        self._server: asyncio.Server | None = None
        self._arrived: asyncio.Queue[StreamLink] = asyncio.Queue()
        self._current: StreamLink | None = None
        self.refused = {"not_allowed": 0, "busy": 0}

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        if self._server is None:
            return self.conn.port
        return int(self._server.sockets[0].getsockname()[1])

    def allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        who = f"{peer[0]}:{peer[1]}"
        if not self.allowed(str(peer[0])):
            self.refused["not_allowed"] += 1
            log.warning(
                "%s: refused a connection from %s: not in allow_peers (%d refused so far)",
                self.what,
                who,
                self.refused["not_allowed"],
            )
            writer.transport.abort()
            return
        current = self._current
        if current is not None and not current.closed.is_set():
            self.refused["busy"] += 1
            log.warning(
                "%s: refused a second connection from %s while the scanner's (%s) is alive "
                "(%d refused so far)",
                self.what,
                who,
                current.what,
                self.refused["busy"],
            )
            writer.transport.abort()
            return
        _keepalive(writer.get_extra_info("socket"))
        link = StreamLink(reader, writer, f"{self.what} (scanner {who})")
        log.info("scanner connected from %s to %s", who, self.what)
        self._current = link
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
