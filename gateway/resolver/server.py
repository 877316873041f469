"""The resolver's process: waitress serving :class:`~gateway.resolver.app.ResolverApp`, the
snapshot watcher and the query-log writer, stopped cleanly by SIGTERM/SIGINT.

waitress brings what a public server needs and is not written here: a bounded pool of worker
threads, a connection limit, idle-channel timeouts, header and body size limits. Its own
low-level refusals (a malformed request line, a header block over the limit, a body over
waitress's limit) are plain-text answers without internals; everything else is answered by the
app with its security headers. X-Forwarded-For is read by the app against
``resolver.trusted_proxies`` (waitress trusts one address or all, not networks), so waitress
is told not to strip it.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from gateway.resolver.app import ResolverApp
from gateway.resolver.config import ResolverSection, parse_listen
from gateway.resolver.pages import Pages
from gateway.resolver.querylog import QueryLog
from gateway.resolver.ratelimit import RateLimiter
from gateway.resolver.snapshot import SnapshotHolder
from gateway.resolver.verdict import Resolver

__all__ = ["ResolverServer"]

log = logging.getLogger(__name__)

QUIET_WAITRESS = "waitress.queue"
"""waitress logs a WARNING "Task queue depth is N" for every request that waits for a free
thread: under load that is every other request, a log record built (and rate-limited away) each
time; a queue is how waitress handles load, so only its errors are logged."""


class ResolverServer:
    """One resolver process's parts, bound to its port when constructed."""

    def __init__(
        self,
        cfg: ResolverSection,
        listen: str | None = None,
        clock: Callable[[], float] = time.time,
        limiter: RateLimiter | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        """Binds ``listen`` (else ``cfg.listen``), or serves ``sock``, a listening socket
        (:mod:`.workers`: one socket shared by several processes)."""
        self.cfg = cfg
        logging.getLogger(QUIET_WAITRESS).setLevel(logging.ERROR)
        where: dict[str, Any]
        if sock is not None:
            where = {"sockets": [sock]}
        else:
            host, port = parse_listen(listen or cfg.listen)
            where = {"host": host, "port": port}
        self.snapshots = SnapshotHolder(cfg.snapshot, clock)
        self.query_log = QueryLog(cfg.query_log, clock)
        self.resolver = Resolver(cfg, self.snapshots, self.query_log)
        self.app = ResolverApp(cfg, self.resolver, Pages(cfg.hotline), limiter, clock)
        try:
            self._server: Any = create_server(
                self.app,
                **where,
                threads=cfg.threads,
                connection_limit=cfg.connection_limit,
                channel_timeout=cfg.channel_timeout_secs,
                max_request_header_size=16_384,
                max_request_body_size=max(cfg.max_body_bytes * 4, 65_536),
                expose_tracebacks=False,
                clear_untrusted_proxy_headers=False,
                ident="saltgw-resolver",
            )
        except OSError:
            self.query_log.close()
            raise
        self.host = str(self._server.effective_host)
        self.port = int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        """Serve in this (the main) thread until SIGTERM or SIGINT, then close everything."""
        self.snapshots.start(self.cfg.reload_secs)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("resolver: %s, stopping", signal.Signals(signum).name)
            raise SystemExit(0)  # waitress's loop stops on it and shuts its threads down

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._server.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.close()

    def start(self) -> None:
        """Serve from a background thread (tests, an embedding process); :meth:`stop` ends it."""
        self.snapshots.start(self.cfg.reload_secs)
        self._thread = threading.Thread(target=self._server.run, name="resolver-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop a server :meth:`start` started (from another thread)."""
        server = self._server
        # closing the sockets from the loop's own thread (a trigger thunk) ends its loop
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        if self._thread is not None:
            self._thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        self._close_parts()

    def _close_parts(self) -> None:
        self.snapshots.stop()
        self.query_log.close()

    def close(self) -> None:
        """After :meth:`serve_forever`'s loop ended: close the socket and the parts."""
        try:
            self._server.close()
        except OSError:  # pragma: no cover - already closed
            pass
        self._close_parts()
