"""Runs one driver for as long as the gateway runs: connect with backoff, read, recover.

The supervisor owns what every driver would otherwise get wrong on its own: retries with
exponential backoff and jitter (tenacity), the device's state (``online`` / ``offline`` /
``fault`` with the reason) and the rule that one bad device never stops the gateway.
"""

from __future__ import annotations

import asyncio
import logging
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

__all__ = ["DeviceState", "DeviceSupervisor", "State"]

log = logging.getLogger(__name__)


class State(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class DeviceState:
    device: str
    state: State
    detail: str | None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True)
class SupervisorStats:
    readings: int = 0
    reconnects: int = 0
    errors: int = 0


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
    ) -> None:
        self.device = device
        self.driver = driver
        self.on_reading = on_reading
        self.on_state = on_state
        self.backoff_initial = backoff_initial_secs
        self.backoff_max = backoff_max_secs
        self.state: DeviceState | None = None
        self.stats = SupervisorStats()

    def _set(self, state: State, detail: str | None = None) -> None:
        prev = self.state
        if prev is not None and prev.state == state and prev.detail == detail:
            return
        self.state = DeviceState(self.device, state, detail)
        log_fn = log.info if state == State.ONLINE else log.warning
        log_fn("device %s: %s%s", self.device, state, f" ({detail})" if detail else "")
        self.on_state(self.state, prev)

    def _failed(self, exc: BaseException) -> None:
        self.stats.errors += 1
        if isinstance(exc, DeviceFault):
            self._set(State.FAULT, str(exc))
        elif isinstance(exc, DeviceError):
            self._set(State.OFFLINE, str(exc))
        else:
            log.error("device %s: driver error", self.device, exc_info=exc)
            self._set(State.FAULT, f"driver error: {type(exc).__name__}: {exc}")

    async def _connect(self) -> None:
        def before_sleep(rs: RetryCallState) -> None:
            if rs.outcome is not None and (exc := rs.outcome.exception()) is not None:
                self._failed(exc)

        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
            + wait_random(0, self.backoff_initial),
            retry=retry_if_exception_type(Exception),
            before_sleep=before_sleep,
            reraise=True,
        ):
            with attempt:
                await self.driver.connect()

    async def run(self) -> None:
        """Until cancelled: connect, read and hand on readings; on failure close and retry."""
        first = True
        while True:
            try:
                if not first:
                    self.stats.reconnects += 1
                first = False
                await self._connect()
                _raise_if_cancelled()
                self._set(State.ONLINE)
                while True:
                    reading = await self.driver.read()
                    # drivers use asyncio.wait_for, which on 3.11 swallows a cancellation that
                    # lands as the awaited read completes: a stop must still stop us
                    _raise_if_cancelled()
                    self.stats.readings += 1
                    await self.on_reading(reading)
            except asyncio.CancelledError:
                await self._close()
                raise
            except Exception as exc:  # DeviceError or a driver bug: never a dead loop
                self._failed(exc)
                await self._close()
                _raise_if_cancelled()
                await asyncio.sleep(self.backoff_initial)

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
