"""The processes of one process group, read from /proc: what a server started with
``start_new_session=True`` (chromedriver and its Chromium, nginx and its workers) left behind,
to be killed by their ids once the polite stop is done."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def members(pgid: int) -> list[int]:
    """Ids of the live (not zombie) processes whose process group is ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def kill_members(pgid: int, timeout: float = 10.0) -> list[int]:
    """SIGKILL every live member of the group, wait (bounded) until none is left; return the
    ids that had to be killed. Raises AssertionError naming any that outlive ``timeout``."""
    killed = members(pgid)
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while (left := members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        raise AssertionError(f"processes {left} of group {pgid} survived SIGKILL")
    return killed
