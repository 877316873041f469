"""uvicorn (httptools parser, uvloop loop) serving the resolver's ASGI front, with the guards a
public server needs that uvicorn does not bring itself (docs/resolver.md, "HTTP server").

Constraints, written here first (each one tested over real sockets in
tests/integration/test_resolver_uvicorn.py):

- **A request's head must be complete within ``timeout_secs``** of the connection's start or of
  the previous answer on it; otherwise the connection is closed. uvicorn alone arms its
  keep-alive timer only after a first answer and cancels it on the first byte received: a
  client that connects and sends nothing, or half a request line (slowloris), would hold its
  connection for ever.
- **A head over ``max_head_bytes``** (request line plus headers) is answered 431 and the
  connection closed; the bytes held for an incomplete head are bounded the same way (httptools
  sets no limit).
- **At most ``connection_limit`` connections**: one over it closes the connection that has
  waited longest for a request (a silent one, typically: the newcomer itself when it is the only
  one waiting), so silent connections cannot lock clients out and memory stays bounded.
- **Stop**: SIGTERM/SIGINT (or :meth:`UvicornServer.stop`) stops accepting, closes idle
  connections, lets answers in progress finish (at most ``STOP_GRACE_SECS``), then returns.
- uvicorn's own answers (400 for a malformed request, 431 here) are plain text without
  internals; its per-request warnings are not logged (a flood would flood the log), its errors
  are. No Server header names the software, no proxy header is believed by uvicorn (the app
  reads X-Forwarded-For against ``resolver.trusted_proxies``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.resolver.app import SECURITY_HEADERS

__all__ = ["STOP_GRACE_SECS", "UvicornServer", "guarded_protocol"]

log = logging.getLogger(__name__)

STOP_GRACE_SECS = 10
"""How long a stop waits for answers in progress before it cancels them."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_HEAD_TOO_LARGE = b"Request header fields too large."

# per uvicorn server (its ServerState): the connections waiting for a request, oldest first
_Waiting = OrderedDict[int, HttpToolsProtocol]
_WAITING: weakref.WeakKeyDictionary[Any, _Waiting] = weakref.WeakKeyDictionary()


def guarded_protocol(
    timeout_secs: float, max_head_bytes: int, connection_limit: int
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the head timeout, head size limit and connection
    limit of this module's docstring."""

    class Guarded(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _in_head = True
        _head_bytes = 0  # request line and headers, as parsed
        _raw_bytes = 0  # everything received while no whole head had arrived

        def _waiting(self) -> _Waiting:
            waiting = _WAITING.get(self.server_state)
            if waiting is None:
                waiting = _WAITING[self.server_state] = OrderedDict()
            return waiting

        def _await_head(self) -> None:
            self._in_head = True
            self._head_bytes = self._raw_bytes = 0
            self._cancel_timer()
            self._timer = self.loop.call_later(timeout_secs, self._head_timed_out)
            waiting = self._waiting()
            waiting[id(self)] = self
            waiting.move_to_end(id(self))

        def _head_done(self) -> None:
            self._in_head = False
            self._raw_bytes = 0
            self._cancel_timer()
            self._waiting().pop(id(self), None)

        def _cancel_timer(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _head_timed_out(self) -> None:
            self._timer = None
            if self._in_head and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()
            if len(self.connections) > connection_limit:
                _, oldest = self._waiting().popitem(last=False)
                oldest.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timer()
            self._waiting().pop(id(self), None)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._raw_bytes += len(data)
            super().data_received(data)
            # still no whole head: what the parser holds of it is bounded (a read that also
            # completed the head may carry a body: its size is the app's to judge)
            if self._in_head and max(self._head_bytes, self._raw_bytes // 2) > max_head_bytes:
                self._refuse_head()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0

        def on_url(self, url: bytes) -> None:
            self._head_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_bytes += len(name) + len(value) + 4
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._head_bytes > max_head_bytes:
                self._refuse_head()
                return
            self._head_done()
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if self.cycle is not None and not self.transport.is_closing():
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self.cycle is not None and not self.transport.is_closing():
                super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline:
                cycle = self.cycle
                if cycle is None or cycle.response_complete:
                    self._await_head()

        def _refuse_head(self) -> None:
            self._in_head = False
            self._cancel_timer()
            self._waiting().pop(id(self), None)
            if self.transport.is_closing():
                return
            headers = [
                b"HTTP/1.1 431 Request Header Fields Too Large",
                b"content-type: text/plain; charset=utf-8",
                b"content-length: " + str(len(_HEAD_TOO_LARGE)).encode(),
                b"cache-control: no-store",
                *(f"{k.lower()}: {v}".encode() for k, v in SECURITY_HEADERS),
                b"connection: close",
            ]
            self.transport.write(b"\r\n".join(headers) + b"\r\n\r\n" + _HEAD_TOO_LARGE)
            self.transport.close()

    return Guarded


class _Server(uvicorn.Server):
    """uvicorn's server, logging the stop signal as saltgw's servers do."""

    def __init__(self, config: uvicorn.Config, name: str) -> None:
        super().__init__(config)
        self.name = name

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            log.info("%s: %s, stopping", self.name, signal.Signals(sig).name)
        super().handle_exit(sig, frame)


class UvicornServer:
    """``app`` (ASGI) served by uvicorn on ``sock`` (bound and listening); the surface of
    :class:`gateway.web.server.WsgiServer`."""

    def __init__(
        self,
        app: Any,
        name: str,
        sock: socket.socket,
        *,
        timeout_secs: int,
        max_head_bytes: int,
        connection_limit: int,
    ) -> None:
        self.name = name
        self.sock = sock
        where = sock.getsockname()
        self.host, self.port = str(where[0]), int(where[1])
        protocol = guarded_protocol(timeout_secs, max_head_bytes, connection_limit)
        for noisy in ("uvicorn.error", "uvicorn.access"):  # per-request warnings: not logged
            logging.getLogger(noisy).setLevel(logging.ERROR)
        config = uvicorn.Config(
            app,
            http=protocol,
            loop="auto",  # uvloop when installed
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            headers=[("Server", f"saltgw-{name}")],
            timeout_keep_alive=timeout_secs,
            timeout_graceful_shutdown=STOP_GRACE_SECS,
        )
        self._server = _Server(config, name)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self, on_stop: Callable[[], None] | None = None) -> None:
        """Serve in this (the main) thread until SIGTERM or SIGINT, then close the socket and
        call ``on_stop``."""
        # a stop signal before uvicorn installed its own handlers must stop it too; uvicorn
        # raises its stop signal again once it has stopped, to the handler it found: this one
        previous = {s: signal.signal(s, self._server.handle_exit) for s in _STOP_SIGNALS}
        try:
            self._server.run(sockets=[self.sock])
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self.close()
            if on_stop is not None:
                on_stop()

    def start(self) -> None:
        """Serve from a background thread; :meth:`stop` ends it."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.sock]}, name=f"{self.name}-http",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        """Stop a server :meth:`start` started (from another thread)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE_SECS + 5)
        self.close()

    def close(self) -> None:
        """Close the listening socket."""
        self.sock.close()
