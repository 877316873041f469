"""A process started by another for its lifetime only (``saltgw demo``'s resolver and console,
gateway/demo_child.py) ends when that process is gone, even one killed with SIGKILL (no chance
to stop its children): left running, it would keep its port and a user's terminal busy.

The starter passes its pid in ``SALTGW_PARENT_PID``; the child watches its own parent pid and,
once it changed (the child was handed to init or a subreaper), sends itself SIGTERM, its
ordinary clean stop.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

__all__ = ["PARENT_ENV", "exit_when_orphaned"]

PARENT_ENV = "SALTGW_PARENT_PID"
POLL_SECS = 1.0

log = logging.getLogger(__name__)


def exit_when_orphaned(poll_secs: float = POLL_SECS) -> threading.Thread | None:
    """Watch for the parent named in ``SALTGW_PARENT_PID`` (if any) to go away; the watcher."""
    raw = os.environ.pop(PARENT_ENV, "")
    if not raw.isdigit():
        return None
    parent = int(raw)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_secs)
        log.warning("the process that started this one (pid %d) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="orphan-watch", daemon=True)
    watcher.start()
    return watcher
