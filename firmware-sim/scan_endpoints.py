"""Where a simulated scanner sends its frames: a TCP server (the gateway connects; also what a
``socket://`` serial URL reaches), a TCP client (the scanner connects to the gateway's
``tcp_server`` link) or a pseudo-terminal pair (a real serial device node for pyserial).

Frames are sent to whoever is connected; with nobody connected they are dropped (counted in
``unsent``), as a real scanner's would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tty
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "Endpoint",
    "FolderEndpoint",
    "PtyEndpoint",
    "TcpClientEndpoint",
    "TcpServerEndpoint",
    "frame",
]

log = logging.getLogger(__name__)

SimFraming = Literal["cr", "lf", "crlf", "stx_etx"]
_ENDS = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}


def frame(text: str | bytes, framing: SimFraming) -> bytes:
    """``text`` framed as the scanner frames it."""
    body = text.encode() if isinstance(text, str) else text
    if framing == "stx_etx":
        return b"\x02" + body + b"\x03"
    return body + _ENDS[framing]


class Endpoint(Protocol):
    sent: int
    unsent: int

    @property
    def port(self) -> int: ...

    async def start(self) -> None: ...

    async def send(self, data: bytes) -> None: ...

    async def stop(self) -> None: ...


class TcpServerEndpoint:
    def __init__(self, host: str, port: int) -> None:
        self.host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.sent = 0
        self.unsent = 0

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while await reader.read(1024):  # the gateway sends nothing; EOF ends the client
                pass
        except OSError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self._port, reuse_address=True
        )
        self._port = self.port

    async def send(self, data: bytes) -> None:
        if not self._clients:
            self.unsent += 1
            return
        for w in list(self._clients):
            try:
                w.write(data)
                await asyncio.wait_for(w.drain(), 2)
            except (OSError, TimeoutError):
                self._clients.discard(w)
                w.close()
        self.sent += 1

    async def drop_clients(self) -> None:
        """Cut every connection (the scanner rebooted); the server keeps listening."""
        for w in list(self._clients):
            w.close()
        self._clients.clear()

    async def stop(self) -> None:
        await self.drop_clients()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None


class TcpClientEndpoint:
    """Connects to the gateway (retrying every ``retry_secs``) and sends frames there."""

    def __init__(self, host: str, port: int, retry_secs: float = 0.5) -> None:
        self.host, self._port, self.retry_secs = host, port, retry_secs
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.unsent = 0

    @property
    def port(self) -> int:
        return self._port

    async def _keep_connected(self) -> None:
        while True:
            if self._writer is None or self._writer.is_closing():
                try:
                    _, self._writer = await asyncio.open_connection(self.host, self._port)
                except OSError:
                    self._writer = None
            await asyncio.sleep(self.retry_secs)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_connected(), name="scanner-sim-client")

    async def send(self, data: bytes) -> None:
        w = self._writer
        if w is None or w.is_closing():
            self.unsent += 1
            return
        try:
            w.write(data)
            await asyncio.wait_for(w.drain(), 2)
            self.sent += 1
        except (OSError, TimeoutError):
            self.unsent += 1
            w.close()
            self._writer = None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class PtyEndpoint:
    """A pseudo-terminal pair: we write to the master, the gateway opens the slave (through the
    symlink ``link`` when given) as a serial port. Raw mode: no echo, no CR/LF translation."""

    def __init__(self, link: Path | None) -> None:
        self.link = link
        self._master: int | None = None
        self._slave: int | None = None
        self.device: str | None = None
        self.sent = 0
        self.unsent = 0

    @property
    def port(self) -> int:
        return 0

    async def start(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.device = os.ttyname(slave)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self.device)
        log.info("scanner pty %s (link %s)", self.device, self.link)

    async def send(self, data: bytes) -> None:
        if self._master is None:
            self.unsent += 1
            return
        try:
            os.write(self._master, data)
            self.sent += 1
        except (BlockingIOError, OSError):
            self.unsent += 1  # nobody reads the slave and its buffer is full

    async def stop(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()


class FolderEndpoint:
    """A camera that drops one image per trigger into a folder (a smart camera's upload): the
    code as a QR symbol on a bag, distorted as on a line (qrframes.py); a no-read is an image
    without a code. Written under a temporary name, then renamed (never read half-written)."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.folder = folder
        self.rng = rng
        self.sent = 0
        self.unsent = 0

    @property
    def port(self) -> int:
        return 0

    async def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    async def send(self, data: bytes) -> None:
        raise TypeError("a camera station takes texts (write_frame), not bytes")

    async def write_frame(self, text: str | None) -> Path:
        """An image of ``text`` (None: a bag whose code is not in view)."""
        seed = self.rng.randrange(2**32)
        self.sent += 1
        name = f"frame-{self.sent:06d}.png"
        await asyncio.to_thread(self._write, text, seed, name)
        return self.folder / name

    def _write(self, text: str | None, seed: int, name: str) -> None:
        import cv2
        import numpy as np

        from firmware_sim.qrframes import make_frame

        rng = random.Random(seed)
        image, _ = make_frame(text or "", rng) if text else make_frame("x", rng)
        if text is None:  # same bag, label turned away: blank the symbol
            image = cv2.GaussianBlur(image, (0, 0), 25).astype(np.uint8)
        ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok
        tmp = self.folder / (name + ".part")
        tmp.write_bytes(data.tobytes())
        tmp.replace(self.folder / name)

    async def stop(self) -> None:
        return None
