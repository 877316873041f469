"""The gateway's side of a camera's decode worker (drivers/camera/worker.py): starts it, sends
it requests one at a time and restarts it when it dies, so that OpenCV, numpy and ZBar live in
the worker and never in the gateway process (docs/performance.md, "Memory").

A request goes out only when the one before it was answered (one frame in flight per camera:
the queue between gateway and worker is bounded by construction). What can go wrong and what
the caller sees:

    the worker answered "error"                    WorkerError (the worker goes on)
    it exited or was killed (a decoder crash)      WorkerDied: "exited with status N" or
                                                   "killed by signal N"
    no answer within the request's deadline        WorkerDied: the worker is killed
    the framing broke or answers came out of step  WorkerDied: the worker is killed
    the waiting request was cancelled              the worker is killed (its answer would
                                                   arrive out of step), the cancel goes on

After a WorkerDied the next request starts a fresh worker (``starts`` counts them). The worker's
log lines (stderr) are relayed to this module's logger at their own level.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from pathlib import Path
from typing import Any

from drivers.camera import wire

__all__ = ["START_SECS", "DecodeWorker", "WorkerDied", "WorkerError"]

log = logging.getLogger(__name__)

#: How long a worker may take to start and answer its hello (importing OpenCV on a slow PC).
START_SECS = 60.0
STOP_SECS = 5.0
EXIT_GRACE_SECS = 2.0  # a worker whose pipe closed has this long to exit before it is killed
_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR")}
_ROOT = str(Path(__file__).resolve().parents[2])  # where the drivers package lives


class WorkerDied(RuntimeError):
    """The worker exited, hung past a deadline or broke the framing; the next request starts a
    new one."""


class WorkerError(RuntimeError):
    """The worker answered a request with an error (it goes on serving)."""


def _status(rc: int | None) -> str:
    if rc is None:
        return "stopped"
    return f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"


class DecodeWorker:
    """One camera's worker process. ``strategies`` as in the camera's config (None: the
    decoder's cascade); ``engine`` is the decoder the worker reported ("zbar" or "opencv"),
    None until a worker has started; ``starts`` and ``requests`` count workers started and
    requests written."""

    def __init__(
        self, name: str, strategies: list[str] | None, *, start_secs: float = START_SECS
    ) -> None:
        self.name = name
        self.strategies = strategies
        self.start_secs = start_secs
        self.engine: str | None = None
        self.starts = 0
        self.requests = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def ensure_started(self) -> None:
        """Start the worker unless it is running."""
        async with self._lock:
            if self.pid is None:
                await self._start()

    async def request(
        self, header: dict[str, Any], payload: bytes = b"", deadline_secs: float | None = None
    ) -> dict[str, Any]:
        """Send one request (starting the worker if needed) and return its answer; with no answer
        within ``deadline_secs`` the worker is killed (WorkerDied)."""
        async with self._lock:
            if self.pid is None:
                await self._start()
            return await self._exchange(header, payload, deadline_secs)

    async def stop(self) -> None:
        """End the worker: its stdin closed (it exits), killed after STOP_SECS."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), STOP_SECS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._end_relay()

    # -- inside the lock --------------------------------------------------------------------------
    async def _start(self) -> None:
        await self._kill()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "drivers.camera.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, limit=1 << 20,
        )  # fmt: skip
        self._proc = proc
        self.starts += 1
        assert proc.stderr is not None
        self._relay = asyncio.create_task(self._relay_log(proc.stderr))
        hello = {"op": "hello", "strategies": self.strategies}
        try:
            reply = await self._exchange(hello, b"", self.start_secs)
        except WorkerError:
            await self._kill()
            raise
        self.engine = str(reply["engine"])
        log.info(
            "camera %s: decode worker started (pid %d, decoder %s)",
            self.name,
            proc.pid,
            self.engine,
        )

    async def _exchange(
        self, header: dict[str, Any], payload: bytes, deadline_secs: float | None
    ) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        rid = next(self._ids)
        try:
            async with asyncio.timeout(deadline_secs):  # a stopped worker blocks the write too
                proc.stdin.write(wire.encode({**header, "id": rid}, payload))
                self.requests += 1
                await proc.stdin.drain()
                reply = await self._answer(proc.stdout)
        except TimeoutError:
            await self._kill()
            raise WorkerDied(f"no answer within {deadline_secs:g} s: worker stopped") from None
        except (ConnectionError, asyncio.IncompleteReadError, wire.WireError) as exc:
            going = not isinstance(exc, wire.WireError)  # its pipe closed: it is exiting
            rc = await self._kill(grace=EXIT_GRACE_SECS if going else 0.0)
            why = f" ({exc})" if isinstance(exc, wire.WireError) else ""
            raise WorkerDied(f"{_status(rc)}{why}") from exc
        except asyncio.CancelledError:
            self._kill_now()  # its answer would arrive out of step
            raise
        if reply.get("id") != rid:
            await self._kill()
            raise WorkerDied(f"answered request {reply.get('id')!r} for {rid}: out of step")
        if "error" in reply:
            raise WorkerError(str(reply["error"]))
        return reply

    @staticmethod
    async def _answer(stdout: asyncio.StreamReader) -> dict[str, Any]:
        n = wire.header_length(await stdout.readexactly(4))
        header, size = wire.parse_header(await stdout.readexactly(n))
        if size:
            await stdout.readexactly(size)  # no answer carries a payload today
        return header

    def _kill_now(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def _kill(self, grace: float = 0.0) -> int | None:
        """End the worker and return its status. With ``grace``, a worker that is going (its
        pipe closed) is first given that long to exit: killing one that has exited already
        polls it, and that poll reaps the status asyncio's child watcher waits for (it then
        reports 255 in place of the worker's own status)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.returncode is None and grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await proc.wait()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        rc = await proc.wait()
        await self._end_relay()
        return rc

    async def _end_relay(self) -> None:
        relay, self._relay = self._relay, None
        if relay is not None:
            try:
                await asyncio.wait_for(relay, STOP_SECS)
            except TimeoutError:
                relay.cancel()

    async def _relay_log(self, stderr: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stderr.readline()
            except ValueError:  # a line over the limit: dropped, the next one is read
                continue
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            if not text:
                continue
            first, _, rest = text.partition(" ")
            level = _LEVELS.get(first)
            if level is None:  # a traceback, -X importtime output, a library's own print
                level = logging.DEBUG if text.startswith("import time:") else logging.WARNING
                rest = text
            log.log(level, "camera %s decode worker: %s", self.name, rest)
