"""Logging set-up: one line per record, text or JSON, with repeats rate-limited.

A device that fails every 100 ms must not write ten lines a second for hours: the same message
(same logger, level, text template and first argument — by convention the device or file it is
about) is let through at most ``burst`` times per ``window_secs``; the next line that passes says
how many were suppressed. A record logged with ``extra={"state_change": True}`` (a broker
connect or disconnect: each is news) always passes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime

__all__ = ["JsonFormatter", "RateLimit", "setup_logging"]


class RateLimit(logging.Filter):
    def __init__(self, burst: int = 5, window_secs: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window_secs
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "state_change", False):  # connects, disconnects: one line each, always
            return True
        first = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        key = (record.name, record.levelno, f"{record.msg}\0{first}")
        now = time.monotonic()
        start, count, suppressed = self._seen.get(key, (now, 0, 0))
        if now - start > self.window:
            start, count = now, 0
        if count >= self.burst:
            self._seen[key] = (start, count, suppressed + 1)
            return False
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} similar lines suppressed]"
        self._seen[key] = (start, count + 1, 0)
        if len(self._seen) > 10_000:  # bounded memory whatever the messages
            self._seen.clear()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False)


SALTGW_HANDLER = "saltgw"  # the name of the root handler setup_logging installs
QUIETED_LOGGERS = ("pymodbus", "asyncua", "amqtt", "transitions")  # WARNING and up only


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(SALTGW_HANDLER)
    handler.addFilter(RateLimit())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    for noisy in QUIETED_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
