"""The running gateway's control socket, for ``saltgw reload`` (docs/operations.md, "Changing
the map on a running line").

``saltgw run`` listens on a Unix socket beside its journal, ``{journal.path}.ctl`` (mode 0600
in the journal's owner-only directory; a relative journal path is relative to the working
directory, as everywhere in a map). A client sends one line, ``reload``, and reads one JSON
line: the outcome of the reload (``ok``, the file and its sha256, the devices added, removed
and changed, or the ``errors``). Only the gateway's own user and root are served (the peer's
credentials, ``SO_PEERCRED``), and who asked is named in the ``config.reload`` event.

SIGHUP does the same without an answer (``systemctl reload``); its outcome is in the log and
in the events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

__all__ = ["ControlServer", "ask_reload", "control_path"]

log = logging.getLogger(__name__)

REQUEST_LIMIT = 256  # bytes of a request line
REQUEST_TIMEOUT_SECS = 5.0


def control_path(journal: Path) -> Path:
    """The control socket of the gateway whose journal is ``journal``."""
    return journal.with_name(journal.name + ".ctl")


def _peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket (Linux)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid, uid


def _who(pid: int, uid: int) -> str:
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = f"uid {uid}"
    return f"{name} (uid {uid}, pid {pid}, saltgw reload)"


class ControlServer:
    """Serves ``reload`` requests on ``path`` by awaiting ``reload(who)``."""

    def __init__(self, path: Path, reload: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        self.path = path
        self._reload = reload
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> bool:
        """Listen; False (logged) when the socket cannot be made: SIGHUP still reloads."""
        try:
            if self.path.is_socket():  # left by a gateway that was killed
                self.path.unlink()
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=REQUEST_LIMIT
            )
            os.chmod(self.path, 0o600)
        except OSError as exc:
            log.warning(
                "control socket %s: cannot listen (%s): `saltgw reload` is unavailable, "
                "SIGHUP still reloads the map",
                self.path,
                exc.strerror or exc,
            )
            return False
        log.info("control socket %s: `saltgw reload` or SIGHUP reloads the map", self.path)
        return True

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        try:
            self.path.unlink()
        except OSError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            answer = await self._answer(reader, writer)
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except Exception as exc:  # a client that leaves early must not stop anything
            log.warning("control socket: request failed: %s", exc)
        finally:
            writer.close()

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        pid, uid = _peer(writer.get_extra_info("socket"))
        if uid not in (os.getuid(), 0):
            log.warning("control socket: refused uid %d (pid %d): not the gateway's user", uid, pid)
            return {"ok": False, "errors": [f"uid {uid} may not control this gateway"]}
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT_SECS)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError):
            return {"ok": False, "errors": ["no request line (expected 'reload')"]}
        request = line.strip().decode("utf-8", "replace")
        if request != "reload":
            return {
                "ok": False,
                "errors": [f"unknown request {request[:40]!r} (expected 'reload')"],
            }
        return await self._reload(_who(pid, uid))


def ask_reload(path: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Ask the gateway listening on ``path`` to reload its map; its answer. OSError when no
    gateway answers there; ValueError when the answer is not one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(b"reload\n")
        chunks: list[bytes] = []
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks) or b"null")
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ValueError(f"not an answer of saltgw run: {answer!r}"[:200])
    return answer
