"""The device supervisor stops when cancelled, whatever it is doing at that moment — also when
the cancellation lands just as a driver's close() completes (on Python 3.11, asyncio.wait_for
swallowed exactly that one and `saltgw run` never stopped)."""

from __future__ import annotations

import asyncio

from drivers.base import DeviceOffline, Reading
from gateway.supervisor import DeviceSupervisor


class CloseRacesStop:
    """Fails every read; its close() is where the gateway's stop request arrives."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.connects = 0

    async def connect(self) -> None:
        self.connects += 1

    async def read(self) -> Reading:
        raise DeviceOffline("scanner hung up")

    async def close(self) -> None:
        assert self.task is not None
        self.task.cancel()  # the stop, at the very moment close finishes


def test_a_stop_arriving_as_close_completes_stops_the_supervisor() -> None:
    async def main() -> int:
        driver = CloseRacesStop()
        sup = DeviceSupervisor(
            "scan1", driver, _ignore, lambda s, p: None, backoff_initial_secs=0.01
        )
        driver.task = asyncio.create_task(sup.run())
        try:
            await asyncio.wait_for(asyncio.shield(driver.task), timeout=3)
        except asyncio.CancelledError:
            pass
        assert driver.task.done(), f"still running after {driver.connects} reconnects"
        return driver.connects

    assert asyncio.run(main()) == 1


async def _ignore(reading: Reading) -> None:
    return None


class SwallowsCancel:
    """A read that swallows the cancellation and returns a reading, as asyncio.wait_for does on
    Python 3.11 when the awaited read completes in the same step as the cancel."""

    def __init__(self) -> None:
        self.reads = 0
        self.swallow = True

    async def connect(self) -> None:
        return None

    async def read(self) -> Reading:
        self.reads += 1
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
            # swallowed: the task's cancel request stays counted (Task.cancelling)
        from datetime import UTC, datetime

        return Reading("scan1", datetime.now(UTC), {}, {})

    async def close(self) -> None:
        return None


def test_a_stop_swallowed_inside_a_read_still_stops_the_supervisor() -> None:
    async def main() -> int:
        driver = SwallowsCancel()
        sup = DeviceSupervisor("scan1", driver, _ignore, lambda s, p: None)
        task = asyncio.create_task(sup.run())
        await asyncio.sleep(0.5)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        driver.swallow = False  # so that a failing run still ends
        assert task in done, f"still reading after the stop ({driver.reads} reads)"
        return driver.reads

    assert asyncio.run(main()) <= 5
