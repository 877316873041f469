"""The zero-install default broker for ``saltgw demo``: amqtt, in process, MQTT 3.1.1 only.

Measured by the team at ~7.7k QoS 0 / ~3.8k QoS 1 msg/s: plenty for a demo line, not a
production broker (use mosquitto or EMQX there).
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any

__all__ = ["EmbeddedBroker"]

log = logging.getLogger(__name__)
SHUTDOWN_SECS = 5.0


class EmbeddedBroker:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def __aenter__(self) -> EmbeddedBroker:
        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await self._broker.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:  # amqtt can wait forever on a client that never closes: bound it
            await asyncio.wait_for(self._broker.shutdown(), timeout=SHUTDOWN_SECS)
        except TimeoutError:
            log.warning("embedded broker did not shut down within %s s; left behind", SHUTDOWN_SECS)
