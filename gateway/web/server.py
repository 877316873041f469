"""A waitress server for saltgw's web surfaces, bound when constructed, served from the main
thread until SIGTERM/SIGINT (:meth:`WsgiServer.serve_forever`) or from a background thread
(:meth:`WsgiServer.start` / :meth:`WsgiServer.stop`, for tests and embedding processes).

waitress brings what a server needs and is not written here: a bounded pool of worker threads,
a connection limit, idle-channel timeouts, header and body size limits."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

__all__ = ["WsgiServer"]

log = logging.getLogger(__name__)


class WsgiServer:
    """``app`` served by waitress; ``where``: ``{"host", "port"}`` or ``{"sockets": [...]}``;
    ``options``: waitress adjustments (threads, connection_limit, ...)."""

    def __init__(self, app: Any, name: str, where: dict[str, Any], **options: Any) -> None:
        self.name = name
        self._server: Any = create_server(
            app, **where, expose_tracebacks=False, ident=f"saltgw-{name}", **options
        )
        self.host = str(self._server.effective_host)
        self.port = int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(
        self,
        on_stop: Callable[[], None] | None = None,
        *,
        before_stop: Callable[[], None] | None = None,
    ) -> None:
        """Serve in this (the main) thread until SIGTERM or SIGINT, then close the socket and
        call ``on_stop``. ``before_stop`` runs first, on the signal: what must end before
        waitress waits for its threads (a long-lived response, such as the console's event
        stream, that would otherwise write after the server closed its sockets)."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: %s, stopping", self.name, signal.Signals(signum).name)
            if before_stop is not None:
                before_stop()
            raise SystemExit(0)  # waitress's loop stops on it and shuts its threads down

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._server.run()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            try:
                self._server.close()
            except OSError:  # pragma: no cover - already closed
                pass
            if on_stop is not None:
                on_stop()

    def start(self) -> None:
        """Serve from a background thread; :meth:`stop` ends it."""
        self._thread = threading.Thread(
            target=self._server.run, name=f"{self.name}-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop a server :meth:`start` started (from another thread)."""
        server = self._server
        # closing the sockets from the loop's own thread (a trigger thunk) ends its loop
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        if self._thread is not None:
            self._thread.join(timeout=10)
        server.task_dispatcher.shutdown()

    def close(self) -> None:
        """Close the listening socket of a server that never ran."""
        try:
            self._server.close()
        except OSError:  # pragma: no cover - already closed
            pass
