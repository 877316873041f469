"""Several resolver processes on one listening socket (``resolver.workers``), so a host's cores
all answer: CPython runs one thread of Python at a time, so one process uses about one core.

The parent binds and listens once (``--listen 127.0.0.1:0`` gets one real port, printed once),
then forks the workers before it starts any thread; each worker is a whole
:class:`~gateway.resolver.server.ResolverServer` on the inherited socket, with its own snapshot
connections, query-log writer and rate-limit table. The kernel hands each new connection to
whichever worker accepts it first (an idle one, mostly).

- Query records and counts are shared through ``resolver.query_log`` exactly as between
  replicas on one host: a worker sees another's queries once that worker's writer committed
  them (within ``flush_secs``, 0.2 s).
- Rate limits are per worker: a client may get up to ``workers`` times its limit when its
  connections reach different workers.
- SIGTERM or SIGINT to the parent stops every worker (each writes its queued records), then the
  parent exits 0. A worker that dies otherwise is logged and started again (at most once a
  second); a worker whose parent disappeared stops itself.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

from gateway.resolver.config import ResolverSection
from gateway.web.listen import parse_listen

__all__ = ["WorkerPool", "listening_socket"]

log = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

STOP_WAIT_SECS = 30.0
"""How long the parent waits for its workers after SIGTERM before it kills them."""


def listening_socket(listen: str, backlog: int = 1024) -> socket.socket:
    """A TCP socket bound to ``HOST:PORT`` and listening (OSError when it cannot)."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class WorkerPool:
    """The parent of ``cfg.workers`` resolver processes sharing one listening socket."""

    def __init__(self, cfg: ResolverSection, listen: str | None = None) -> None:
        self.cfg = cfg
        self.sock = listening_socket(listen or cfg.listen)
        name = self.sock.getsockname()
        self.host, self.port = str(name[0]), int(name[1])
        self._children: dict[int, int] = {}  # pid -> worker number
        self._stopping = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _spawn(self, number: int) -> None:
        parent = os.getpid()
        # no SIGTERM may reach the new worker's copy of the parent's handler: blocked across
        # the fork, the worker restores the default action before it takes signals again
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid != 0:
            self._children[pid] = number  # before a signal can ask to stop them all
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        else:  # the worker: never returns into the parent's code
            for s in _STOP_SIGNALS:
                signal.signal(s, signal.SIG_DFL)  # until serve_forever installs its own
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            code = 1
            try:
                code = _worker(self.cfg, self.sock, parent, number)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # logged, then the process ends
                log.exception("resolver worker %d failed", number)
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        log.info("resolver: worker %d is process %d", number, pid)

    def serve_forever(self) -> None:
        """Fork the workers; until SIGTERM or SIGINT, start again one that dies; then stop
        them all and return."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if not self._stopping:
                log.info("resolver: %s, stopping %d workers", signal.Signals(signum).name,
                         len(self._children))  # fmt: skip
            self._stopping = True
            for pid in list(self._children):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

        previous = {s: signal.signal(s, on_signal) for s in _STOP_SIGNALS}
        try:
            for number in range(self.cfg.workers):
                if not self._stopping:
                    self._spawn(number)
            last_spawn = 0.0
            while self._children:
                try:
                    pid, status = os.wait()
                except ChildProcessError:
                    break
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                number = self._children.pop(pid, -1)
                if number < 0 or self._stopping:
                    continue
                log.error("resolver worker %d (process %d) ended (%s); starting it again",
                          number, pid, _status(status))  # fmt: skip
                time.sleep(max(0.0, last_spawn + 1.0 - time.monotonic()))
                last_spawn = time.monotonic()
                if not self._stopping:
                    self._spawn(number)
        finally:
            self._reap()
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.sock.close()

    def _reap(self) -> None:
        """After a stop: wait for the workers, killing those still there after a while."""
        deadline = time.monotonic() + STOP_WAIT_SECS
        while self._children and time.monotonic() < deadline:
            for pid in list(self._children):
                try:
                    done = os.waitpid(pid, os.WNOHANG)[0]
                except ChildProcessError:
                    done = pid
                if done:
                    self._children.pop(pid, None)
            time.sleep(0.05)
        for pid in list(self._children):
            log.error("resolver worker process %d did not stop in %.0f s: killed", pid,
                      STOP_WAIT_SECS)  # fmt: skip
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self._children.pop(pid, None)


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def _worker(cfg: ResolverSection, sock: socket.socket, parent: int, number: int) -> int:
    from gateway.resolver.server import ResolverServer

    server = ResolverServer(cfg, sock=sock)

    def orphaned() -> None:  # the parent was killed without passing SIGTERM on
        while os.getppid() == parent:
            time.sleep(1.0)
        log.error("resolver worker %d: parent process %d gone, stopping", number, parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
    server.serve_forever()
    return 0
