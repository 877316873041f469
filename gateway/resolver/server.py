"""The resolver's process: an HTTP server answering with
:class:`~gateway.resolver.app.ResolverApp`, the snapshot watcher and the query-log writer,
stopped cleanly by SIGTERM/SIGINT.

The server is uvicorn (:mod:`.uvserver`: httptools and uvloop, the app answering on the event
loop through :mod:`.asgi`) when it is installed, else waitress (``resolver.server``). uvicorn's
gaps for a public server (no timeout for a request's head, no head size limit, no connection
limit) are closed in :mod:`.uvserver`.

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
from typing import TYPE_CHECKING, Any

from gateway.resolver.app import ResolverApp
from gateway.resolver.config import ResolverSection
from gateway.resolver.pages import Pages
from gateway.resolver.querylog import QueryLog
from gateway.resolver.ratelimit import RateLimiter
from gateway.resolver.snapshot import SnapshotHolder
from gateway.resolver.verdict import Resolver
from gateway.web.listen import parse_listen

if TYPE_CHECKING:
    from gateway.resolver.uvserver import UvicornServer
    from gateway.web.server import WsgiServer

__all__ = ["MAX_HEAD_BYTES", "ResolverServer", "server_kind"]

log = logging.getLogger(__name__)

QUIET_WAITRESS = "waitress.queue"
"""waitress logs a WARNING "Task queue depth is N" for every request that waits for a free
thread: under load that is every other request, a log record built (and rate-limited away) each
time; a queue is how waitress handles load, so only its errors are logged."""


MAX_HEAD_BYTES = 16_384
"""A request's line and headers at most (larger: 431 with uvicorn, 4xx with waitress)."""


def server_kind(cfg: ResolverSection) -> str:
    """``uvicorn`` or ``waitress``: ``resolver.server``, ``auto`` meaning uvicorn when it
    (with httptools) is installed."""
    if cfg.server != "auto":
        return str(cfg.server)
    try:
        import httptools  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return "waitress"
    return "uvicorn"


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
        self.snapshots = SnapshotHolder(cfg.snapshot, clock)
        self.query_log = QueryLog(cfg.query_log, clock)
        self.resolver = Resolver(cfg, self.snapshots, self.query_log)
        self.app = ResolverApp(cfg, self.resolver, Pages(cfg.hotline), limiter, clock)
        self.kind = server_kind(cfg)
        self._web: UvicornServer | WsgiServer
        try:
            if self.kind == "uvicorn":
                self._web = self._uvicorn(sock, listen)
            else:
                self._web = self._waitress(sock, listen)
        except OSError:
            self.query_log.close()
            raise
        self.host = self._web.host
        self.port = self._web.port

    def _uvicorn(self, sock: socket.socket | None, listen: str | None) -> UvicornServer:
        from gateway.resolver.asgi import AsgiResolver
        from gateway.resolver.uvserver import UvicornServer
        from gateway.resolver.workers import listening_socket

        cfg = self.cfg
        return UvicornServer(
            AsgiResolver(self.app, cfg.channel_timeout_secs),
            "resolver",
            sock if sock is not None else listening_socket(listen or cfg.listen),
            timeout_secs=cfg.channel_timeout_secs,
            max_head_bytes=MAX_HEAD_BYTES,
            connection_limit=cfg.connection_limit,
        )

    def _waitress(self, sock: socket.socket | None, listen: str | None) -> WsgiServer:
        from gateway.web.server import WsgiServer

        cfg = self.cfg
        logging.getLogger(QUIET_WAITRESS).setLevel(logging.ERROR)
        where: dict[str, Any]
        if sock is not None:
            where = {"sockets": [sock]}
        else:
            host, port = parse_listen(listen or cfg.listen)
            where = {"host": host, "port": port}
        return WsgiServer(
            self.app,
            "resolver",
            where,
            threads=cfg.threads,
            connection_limit=cfg.connection_limit,
            channel_timeout=cfg.channel_timeout_secs,
            max_request_header_size=MAX_HEAD_BYTES,
            max_request_body_size=max(cfg.max_body_bytes * 4, 65_536),
            clear_untrusted_proxy_headers=False,
        )

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
