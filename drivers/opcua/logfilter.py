"""Quiet asyncua's own logging of a lost link: a PLC restart is one state change, logged once.

When the server goes away, asyncua's publish loop logs ``Publish iteration crashed; retrying in
1s`` at ERROR with a traceback (``ConnectionError: Connection is closed``), and closing the
dead session logs ``close_session was called but connection is closed``. The driver notices
the same loss (``DeviceOffline``) and the supervisor logs it as one line,
``device plc1: offline (subscription on … ended with BadShutdown …)``; these records say
nothing more, so :class:`LinkLossFilter` drops them. A publish loop that fails for another
reason (not a lost link) is still logged, as one WARNING line without the traceback.
"""

from __future__ import annotations

import logging

from asyncua import ua

__all__ = ["SESSION_LOGGER", "LinkLossFilter", "install"]

SESSION_LOGGER = "asyncua.client.ua_session.UaSession"
_PUBLISH_CRASHED = "Publish iteration crashed"
_CLOSED_SESSION = "close_session was called but connection is closed"
_LINK_LOST_CODES = frozenset(
    {
        ua.StatusCodes.BadConnectionClosed,
        ua.StatusCodes.BadSecureChannelClosed,
        ua.StatusCodes.BadServerHalted,
        ua.StatusCodes.BadShutdown,
        ua.StatusCodes.BadSessionClosed,
        ua.StatusCodes.BadSessionIdInvalid,
        ua.StatusCodes.BadCommunicationError,
    }
)


def _link_lost(exc: BaseException | None) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, ua.UaStatusCodeError):
        return exc.code in _LINK_LOST_CODES
    return False


class LinkLossFilter(logging.Filter):
    """Drops asyncua's records of a lost link; shortens any other publish-loop failure."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(_CLOSED_SESSION):
            self.dropped += 1
            return False
        if not message.startswith(_PUBLISH_CRASHED):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if _link_lost(exc):
            self.dropped += 1
            return False
        record.msg = "OPC UA publish loop failed: %r; asyncua retries in 1 s"
        record.args = (exc,)
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_FILTER = LinkLossFilter()


def install() -> LinkLossFilter:
    """Put the filter on asyncua's session logger (once; idempotent)."""
    logger = logging.getLogger(SESSION_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return _FILTER
