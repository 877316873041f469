"""The fixed scanner driver: one Reading per frame the scanner sends.

A reading's tags (README.md, "Readings")::

    codes     str   the code(s) of the frame, one per line ("" for a no-read or garbage)
    noread    bool  the frame was a no-read marker (NoRead, ERROR, …)
    raw       str   the frame as received (escaped when binary), for the record
    frames    int   frames received since the driver started (good and rejected)
    rejected  int   frames rejected as garbage since the driver started

Garbage (binary, overlong, wrong framing) is a reading with ``errors["frame"]`` saying why, so
the gateway counts and reports it, and the driver carries on with the next frame. Link failures
raise :class:`DeviceOffline`; the supervisor reconnects.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime

from drivers.base import DeviceOffline, Reading, TagValue
from drivers.scanner.config import ScannerDeviceConfig, ScannerTcpClientLink, ScannerTcpServerLink
from drivers.scanner.framing import Frame, Framer, show_bytes
from drivers.scanner.links import ByteLink, SerialLink, TcpListener, open_tcp, where

__all__ = ["ScannerDriver", "ScannerStats", "split_codes"]

log = logging.getLogger(__name__)


class ScannerStats:
    """Counters since the driver was created (they survive reconnects)."""

    def __init__(self) -> None:
        self.frames = 0
        self.codes = 0
        self.noreads = 0
        self.rejected = 0


def split_codes(text: str, separator: str | None) -> list[str]:
    """The codes of a frame's text: split on ``separator``, stripped, empties dropped."""
    parts = text.split(separator) if separator else [text]
    return [p.strip() for p in parts if p.strip()]


class ScannerDriver:
    """A :class:`drivers.base.Driver` for one fixed scanner."""

    def __init__(self, config: ScannerDeviceConfig) -> None:
        self.config = config
        self.stats = ScannerStats()
        self._where = where(config.connection)
        self._framer = self._new_framer()
        self._ready: deque[Frame] = deque()
        self._link: ByteLink | None = None
        self._listener: TcpListener | None = None
        if isinstance(config.connection, ScannerTcpServerLink):
            self._listener = TcpListener(config.connection)
        self._markers = {m.casefold() for m in config.noread_markers}

    def __repr__(self) -> str:
        return f"ScannerDriver({self.config.id!r}, {self._where}, {self.config.framing})"

    @property
    def refused_connections(self) -> dict[str, int]:
        """A tcp_server link's refused connections: ``not_allowed`` (a peer outside
        allow_peers) and ``busy`` (a second connection while the scanner's is alive)."""
        return dict(self._listener.refused) if self._listener is not None else {}

    @property
    def listen_port(self) -> int | None:
        """The port a tcp_server scanner connects to (once listening), else None."""
        return self._listener.port if self._listener is not None else None

    def _new_framer(self) -> Framer:
        cfg = self.config
        return Framer(
            cfg.framing,
            max_bytes=cfg.max_frame_bytes,
            encoding=cfg.encoding,
            length=cfg.frame_length,
        )

    async def connect(self) -> None:
        await self._drop_link()
        timeout = self.config.connect_timeout_ms / 1000
        conn = self.config.connection
        if isinstance(conn, ScannerTcpClientLink):
            self._link = await open_tcp(conn, timeout)
        elif self._listener is not None:
            assert isinstance(conn, ScannerTcpServerLink)
            self._link = await self._listener.accept(conn.accept_timeout_ms / 1000)
        else:
            self._link = await SerialLink.open(conn, timeout)  # type: ignore[arg-type]
        log.info("scanner %r connected (%s)", self.config.id, self._where)

    async def read(self) -> Reading:
        while not self._ready:
            link = self._link
            if link is None:
                raise DeviceOffline(f"scanner {self._where} not connected")
            if self._framer.pending:
                timeout: float | None = self.config.frame_timeout_ms / 1000
            elif self.config.idle_timeout_ms is not None:
                timeout = self.config.idle_timeout_ms / 1000
            else:
                timeout = None
            try:
                data = await link.recv(timeout)
            except DeviceOffline:
                await self._drop_link()
                raise
            if data is not None:
                self._ready.extend(self._framer.feed(data))
            elif self._framer.pending:
                self._ready.extend(self._framer.expire())
            else:
                await self._drop_link()
                raise DeviceOffline(
                    f"scanner {self._where}: no data for {self.config.idle_timeout_ms} ms"
                )
        return self._reading(self._ready.popleft())

    async def close(self) -> None:
        await self._drop_link()
        if self._listener is not None:
            await self._listener.close()

    async def _drop_link(self) -> None:
        for frame in self._framer.reset():
            self._count_rejected(frame)
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    # -- frames → readings ----------------------------------------------------------------------
    def _count_rejected(self, frame: Frame) -> None:
        self.stats.frames += 1
        self.stats.rejected += 1
        log.warning(
            "scanner %s: rejected frame: %s (%r)",
            self.config.id,
            frame.error,
            show_bytes(frame.raw),
        )

    def _reading(self, frame: Frame) -> Reading:
        now = datetime.now(UTC)
        values: dict[str, TagValue] = {"codes": "", "noread": False}
        errors: dict[str, str] = {}
        if frame.text is None:
            self._count_rejected(frame)
            values["raw"] = show_bytes(frame.raw)
            errors["frame"] = f"{frame.error} ({show_bytes(frame.raw)!r})"
        else:
            self.stats.frames += 1
            values["raw"] = frame.text
            if frame.text.casefold() in self._markers:
                self.stats.noreads += 1
                values["noread"] = True
            else:
                codes = split_codes(frame.text, self.config.separator)
                self.stats.codes += len(codes)
                values["codes"] = "\n".join(codes)
        values["frames"] = self.stats.frames
        values["rejected"] = self.stats.rejected
        return Reading(device=self.config.id, ts=now, values=values, errors=errors)
