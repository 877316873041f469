"""Issue 15: a ``tcp_server`` scanner link accepts only its scanner. Old main accepted anyone
(listen_host 0.0.0.0, no check) and the newest connection replaced the scanner's, so a second
client's code was read as the line's. Real sockets on loopback; 127.0.0.2 is another peer
address on Linux's loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from drivers.base import Reading
from drivers.scanner import ScannerDeviceConfig, ScannerDriver
from tests.support.net import free_port

pytestmark = pytest.mark.integration


def _driver(port: int, **link: Any) -> ScannerDriver:
    connection = {"type": "tcp_server", "listen_host": "127.0.0.1", "port": port, **link}
    cfg = {"id": "case1", "driver": "scanner", "connection": connection, "framing": "crlf"}
    return ScannerDriver(ScannerDeviceConfig(**cfg))


def _client(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def _closed_by_peer(s: socket.socket) -> bool:
    """True when the other end closed (or reset) the connection."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


async def _start_connect(drv: ScannerDriver) -> asyncio.Task[None]:
    """``drv.connect()`` running, once its listener is bound."""
    task = asyncio.create_task(drv.connect())
    async with asyncio.timeout(5):
        while drv._listener is None or drv._listener._server is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # the listener has no "bound" event to wait for
    return task


async def _next(drv: ScannerDriver, secs: float = 5) -> Reading:
    async with asyncio.timeout(secs):
        return await drv.read()


def test_a_second_client_is_refused_and_never_read() -> None:
    async def main() -> None:
        port = free_port()
        drv = _driver(port, accept_timeout_ms=5000)
        try:
            connecting = await _start_connect(drv)
            scanner = await asyncio.to_thread(_client, port)
            await connecting
            scanner.sendall(b"GOOD-1\r\n")
            assert (await _next(drv)).values["codes"] == "GOOD-1"
            intruder = await asyncio.to_thread(_client, port)  # same host: allowed, but busy
            intruder.sendall(b"FORGED-1\r\n")
            assert await asyncio.to_thread(_closed_by_peer, intruder)
            intruder.close()
            scanner.sendall(b"GOOD-2\r\n")
            assert (await _next(drv)).values["codes"] == "GOOD-2"  # not FORGED-1
            assert drv.refused_connections == {"not_allowed": 0, "busy": 1}
            # the scanner goes; its next connection is accepted again
            scanner.close()
            with pytest.raises(Exception, match="closed by the scanner"):
                await _next(drv)
            scanner = await asyncio.to_thread(_client, port)
            await drv.connect()
            scanner.sendall(b"GOOD-3\r\n")
            assert (await _next(drv)).values["codes"] == "GOOD-3"
            scanner.close()
        finally:
            await drv.close()

    asyncio.run(main())


def test_a_peer_outside_allow_peers_is_refused() -> None:
    async def main() -> None:
        port = free_port()
        drv = _driver(port, allow_peers=["127.0.0.2"], accept_timeout_ms=1500)
        try:
            connecting = await _start_connect(drv)
            stranger = await asyncio.to_thread(_client, port, "127.0.0.1")
            stranger.sendall(b"FORGED-1\r\n")
            assert await asyncio.to_thread(_closed_by_peer, stranger)
            stranger.close()
            scanner = await asyncio.to_thread(_client, port, "127.0.0.2")
            await connecting
            scanner.sendall(b"GOOD-1\r\n")
            reading = await _next(drv)
            assert reading.values["codes"] == "GOOD-1" and reading.values["frames"] == 1
            assert drv.refused_connections == {"not_allowed": 1, "busy": 0}
            scanner.close()
        finally:
            await drv.close()

    asyncio.run(main())


def test_loopback_only_without_allow_peers() -> None:
    drv = _driver(1)
    listener = drv._listener
    assert listener is not None
    assert listener.allowed("127.0.0.1") and listener.allowed("::1")
    assert listener.allowed("::ffff:127.0.0.1")
    assert not listener.allowed("192.168.10.32") and not listener.allowed("not-an-ip")
    cfg = {"listen_host": "0.0.0.0", "allow_peers": ["192.168.10.32/30"]}
    listener = _driver(1, **cfg)._listener
    assert listener is not None
    assert listener.allowed("192.168.10.33") and not listener.allowed("192.168.10.36")
    assert not listener.allowed("127.0.0.1")  # allow_peers replaces the loopback default
