"""Run a Python process with its wall clock shifted, to prove nothing depends on today's date
(issue 12: a test that expected the day it was written made main red on every other day).

Loaded at interpreter start-up by ``saltgw-clock-shift.pth``, which ``scripts/setup.sh`` writes
into the venv, whenever ``SALTGW_TEST_CLOCK_SHIFT_DAYS`` is set: so the pytest process and every
Python process a test starts (``saltgw run``, ``saltgw demo``, simulators) share the shifted
clock. time-machine moves ``time.time``, ``datetime.now``, ``date.today`` and friends, and the
clock keeps ticking; ``time.monotonic`` (timeouts, rates) is left alone, as is every non-Python
process (mosquitto). libfaketime was tried first: with the monotonic clock faked, every timed
lock wait of CPython (``sem_clockwait``) waited for its deadline in the shifted future, and with
it unfaked, ``time.sleep`` failed with EINVAL.

    SALTGW_TEST_CLOCK_SHIFT_DAYS=366 bash scripts/test.sh
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta

import time_machine

ENV = "SALTGW_TEST_CLOCK_SHIFT_DAYS"


def start() -> None:
    """Shift this process's wall clock once (the .pth may be read twice: lib and lib64)."""
    if getattr(sys, "_saltgw_clock_shifted", False):
        return
    days = float(os.environ[ENV])
    target = datetime.now(UTC) + timedelta(days=days)
    time_machine.travel(target, tick=True).start()
    sys._saltgw_clock_shifted = True  # type: ignore[attr-defined]


if os.environ.get(ENV):
    start()
