"""Runs one driver for as long as the gateway runs: connect with backoff, read, recover.

The supervisor owns what every driver would otherwise get wrong on its own: retries with
exponential backoff and jitter (tenacity), the device's state (``online`` / ``offline`` /
``fault`` with the reason) and the rule that one bad device never stops the gateway.

Backoff counts *consecutive failures*, failed connects and failed reads alike: a device that
accepts the connection but fails every read waits longer and longer (up to
``backoff_max_secs``) between attempts, like one that refuses the connection. It starts over
only after a good read.

A polled device (a driver with ``online_after_first_read = True``, e.g. Modbus) is ``online``
only once a read succeeded: a connection alone proves nothing. A device that only speaks
when it has something to say (a scanner) is ``online`` once connected.

Alarms are rate-limited per device (:class:`AlarmLimiter`, docs/faults.md "Device state
alarms"): every change updates :attr:`DeviceSupervisor.state` (and the retained state
message) at once, but a flapping device gets a bounded number of ``alarm.device`` events,
the next one counting the changes not alarmed (``suppressed``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from drivers.base import DeviceError, DeviceFault, Driver, Reading

__all__ = ["AlarmLimiter", "DeviceState", "DeviceSupervisor", "State"]

log = logging.getLogger(__name__)

#: Alarms a device may raise at once (a few real outages: offline, then online again, …) …
ALARM_BURST = 6
#: … then one more per this many seconds; changes in between are counted, not alarmed.
ALARM_INTERVAL_SECS = 30.0


class State(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's connection state.

    ``alarm``: whether this change is to be raised as ``alarm.device`` (False: a change the
    rate limit suppressed, or only the detail changed; the retained state message still says
    it). ``suppressed``: changes not alarmed since the previous alarm (only on an alarm)."""

    device: str
    state: State
    detail: str | None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    alarm: bool = True
    suppressed: int = 0


@dataclass(slots=True)
class SupervisorStats:
    readings: int = 0
    reconnects: int = 0
    errors: int = 0
    alarms_suppressed: int = 0


class AlarmLimiter:
    """A token bucket: ``burst`` alarms at once, then one per ``interval`` seconds.

    ``clock`` is a monotonic clock in seconds (injected in tests)."""

    def __init__(self, burst: int, interval: float, clock: Callable[[], float]) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError(f"alarm limit needs burst >= 1 and interval > 0 ({burst}, {interval})")
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.interval)
        self._at = now

    def take(self) -> bool:
        """True (and one token spent) when an alarm may be raised now."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next alarm may be raised (0: now)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) * self.interval)


class DeviceSupervisor:
    def __init__(
        self,
        device: str,
        driver: Driver,
        on_reading: Callable[[Reading], Awaitable[None]],
        on_state: Callable[[DeviceState, DeviceState | None], None],
        *,
        backoff_initial_secs: float = 0.5,
        backoff_max_secs: float = 10.0,  # a device back is read again within ~10 s
        alarm_burst: int = ALARM_BURST,
        alarm_interval_secs: float = ALARM_INTERVAL_SECS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.device = device
        self.driver = driver
        self.on_reading = on_reading
        self.on_state = on_state
        self.backoff_initial = backoff_initial_secs
        self.backoff_max = backoff_max_secs
        self.state: DeviceState | None = None
        self.stats = SupervisorStats()
        self.limiter = AlarmLimiter(alarm_burst, alarm_interval_secs, clock)
        self._sleep = sleep
        self._online_on_connect = not getattr(driver, "online_after_first_read", False)
        self._was_online = False
        self._alarmed: DeviceState | None = None  # the state the last alarm said
        self._suppressed = 0
        self._flush_timer: asyncio.TimerHandle | None = None

    # -- state and alarms ----------------------------------------------------------------------
    def _set(self, state: State, detail: str | None = None) -> None:
        prev = self.state
        if prev is not None and prev.state == state and prev.detail == detail:
            return
        log_fn = log.info if state == State.ONLINE else log.warning
        if prev is not None and prev.state == state:  # same state, new reason: no new alarm
            self.state = DeviceState(self.device, state, detail, alarm=False)
            log_fn("device %s: still %s (%s)", self.device, state, detail)
            self.on_state(self.state, prev)
            return
        log_fn("device %s: %s%s", self.device, state, f" ({detail})" if detail else "")
        # back: the last alarm already says this state; coming up: no alarm (runtime.py)
        back = self._suppressed and self._alarmed is not None and self._alarmed.state == state
        coming_up = prev is None and state == State.ONLINE
        if coming_up or (not back and self.limiter.take()):
            self.state = DeviceState(
                self.device, state, detail, alarm=True, suppressed=self._suppressed
            )
            reported_prev, self._alarmed, self._suppressed = self._alarmed, self.state, 0
            self.on_state(self.state, reported_prev if self.state.suppressed else prev)
            return
        self._suppressed += 1
        self.stats.alarms_suppressed += 1
        self.state = DeviceState(self.device, state, detail, alarm=False)
        self.on_state(self.state, prev)
        self._schedule_flush()

    def flush(self) -> None:
        """Raise the alarm a rate-limited change still owes, once the limit allows: when the
        device is now in another state than the last alarm said (else the count waits for
        the next change)."""
        cur = self.state
        if cur is None or self._suppressed == 0:
            return
        alarmed = self._alarmed
        if alarmed is not None and alarmed.state == cur.state:
            return
        if not self.limiter.take():
            self._schedule_flush()
            return
        n, self._suppressed = self._suppressed, 0
        self.state = DeviceState(
            self.device, cur.state, cur.detail, since=cur.since, alarm=True, suppressed=n
        )
        self._alarmed = self.state
        log.warning(
            "device %s: %s (%d state changes not alarmed before)", self.device, cur.state, n
        )
        self.on_state(self.state, alarmed)

    def _schedule_flush(self) -> None:
        if self._flush_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def fire() -> None:
            self._flush_timer = None
            self.flush()

        self._flush_timer = loop.call_later(self.limiter.wait() + 0.01, fire)

    def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        if isinstance(exc, DeviceFault):
            self._set(State.FAULT, str(exc))
        elif isinstance(exc, DeviceError):
            self._set(State.OFFLINE, str(exc))
        else:
            log.error("device %s: driver error", self.device, exc_info=exc)
            self._set(State.FAULT, f"driver error: {type(exc).__name__}: {exc}")
        self.flush()

    # -- running -------------------------------------------------------------------------------
    def _retrying(self) -> AsyncRetrying:
        def before_sleep(rs: RetryCallState) -> None:
            if rs.next_action is not None:
                log.debug(
                    "device %s: attempt %d failed, next in %.2f s",
                    self.device, rs.attempt_number, rs.next_action.sleep,
                )  # fmt: skip

        return AsyncRetrying(
            wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
            + wait_random(0, self.backoff_initial),
            retry=retry_if_exception_type(Exception),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    def _came_online(self) -> None:
        """This session is online; a reconnect when an earlier one was (failed attempts in
        between are not reconnects: they are counted as errors)."""
        if self._was_online:
            self.stats.reconnects += 1
        self._was_online = True
        self._set(State.ONLINE)

    async def _session(self) -> None:
        """One connection: connect, read until something fails. Raises that failure while no
        read succeeded (the backoff grows); returns after a failure that followed good reads
        (the backoff starts over)."""
        good = False
        try:
            await self.driver.connect()
            _raise_if_cancelled()
            if self._online_on_connect:
                self._came_online()
            while True:
                reading = await self.driver.read()
                # drivers use asyncio.wait_for, which on 3.11 swallows a cancellation that
                # lands as the awaited read completes: a stop must still stop us
                _raise_if_cancelled()
                if not good:
                    good = True
                    if not self._online_on_connect:
                        self._came_online()
                self.stats.readings += 1
                self.flush()
                await self.on_reading(reading)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # DeviceError or a driver bug: never a dead loop
            self._failed(exc)
            await self._close()
            _raise_if_cancelled()
            if not good:
                raise

    async def run(self) -> None:
        """Until cancelled: connect, read and hand on readings; on failure close and retry."""
        try:
            while True:
                async for attempt in self._retrying():
                    with attempt:
                        await self._session()
                # the link failed after good reads: try again soon, backoff from the start
                await self._sleep(self.backoff_initial)
        except asyncio.CancelledError:
            await self._close()
            raise
        finally:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None

    async def _close(self) -> None:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the close completes, and the supervisor would reconnect for ever
            async with asyncio.timeout(5):
                await self.driver.close()
        except Exception as exc:  # close must not stop recovery
            log.warning("device %s: close failed: %s", self.device, exc)


def _raise_if_cancelled() -> None:
    """Honour a cancellation requested while we were busy (a stop at any moment stops us)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
