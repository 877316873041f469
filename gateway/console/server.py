"""The console's process: waitress serving :class:`~gateway.console.app.ConsoleApp`, the MQTT
feed and the trace store, stopped cleanly by SIGTERM/SIGINT (gateway/web/server.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.console.app import ConsoleApp
from gateway.console.config import ConsoleSection
from gateway.console.live import LineState, LiveFeed
from gateway.console.records import ConsoleStore
from gateway.console.users import UsersFile
from gateway.web.listen import parse_listen
from gateway.web.server import WsgiServer

__all__ = ["ConsoleServer"]

log = logging.getLogger(__name__)


class ConsoleServer:
    """One console's parts, bound to its port when constructed."""

    def __init__(
        self, cfg: ConsoleSection, listen: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.cfg = cfg
        host, port = parse_listen(listen or cfg.listen)
        self.state = LineState(cfg)
        self.feed = LiveFeed(cfg, self.state)
        self.store = ConsoleStore(cfg)
        self.app = ConsoleApp(cfg, self.state, self.store, UsersFile(cfg.users), clock)
        self._web = WsgiServer(
            self.app,
            "console",
            {"host": host, "port": port},
            threads=cfg.threads,
            connection_limit=100,
            channel_timeout=60,
            max_request_header_size=16_384,
            max_request_body_size=65_536,
        )

    @property
    def url(self) -> str:
        return self._web.url

    def serve_forever(self) -> None:
        self.feed.start()
        # the event streams end within a second of the signal, before waitress waits for them
        self._web.serve_forever(on_stop=self._close_parts, before_stop=self.app.stopping.set)

    def start(self) -> None:
        self.feed.start()
        self._web.start()

    def stop(self) -> None:
        self.app.stopping.set()
        self._web.stop()
        self._close_parts()

    def _close_parts(self) -> None:
        self.app.stopping.set()
        self.feed.stop()
        self.store.close()
