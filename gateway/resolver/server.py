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
import socket
import time
from collections.abc import Callable
from typing import Any

from gateway.resolver.app import ResolverApp
from gateway.resolver.config import ResolverSection, parse_listen
from gateway.resolver.pages import Pages
from gateway.resolver.querylog import QueryLog
from gateway.resolver.ratelimit import RateLimiter
from gateway.resolver.snapshot import SnapshotHolder
from gateway.resolver.verdict import Resolver
from gateway.web.server import WsgiServer

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
            self._web = WsgiServer(
                self.app,
                "resolver",
                where,
                threads=cfg.threads,
                connection_limit=cfg.connection_limit,
                channel_timeout=cfg.channel_timeout_secs,
                max_request_header_size=16_384,
                max_request_body_size=max(cfg.max_body_bytes * 4, 65_536),
                clear_untrusted_proxy_headers=False,
            )
        except OSError:
            self.query_log.close()
            raise
        self.host = self._web.host
        self.port = self._web.port

    @property
    def url(self) -> str:
        return self._web.url

    def serve_forever(self) -> None:
        """Serve in this (the main) thread until SIGTERM or SIGINT, then close everything."""
        self.snapshots.start(self.cfg.reload_secs)
        self._web.serve_forever(on_stop=self._close_parts)

    def start(self) -> None:
        """Serve from a background thread (tests, an embedding process); :meth:`stop` ends it."""
        self.snapshots.start(self.cfg.reload_secs)
        self._web.start()

    def stop(self) -> None:
        """Stop a server :meth:`start` started (from another thread)."""
        self._web.stop()
        self._close_parts()

    def _close_parts(self) -> None:
        self.snapshots.stop()
        self.query_log.close()

    def close(self) -> None:
        """After :meth:`serve_forever`'s loop ended: close the socket and the parts."""
        self._web.close()
        self._close_parts()
