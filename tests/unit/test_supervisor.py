"""The device supervisor stops when cancelled, whatever it is doing at that moment — also when
the cancellation lands just as a driver's close() completes (on Python 3.11, asyncio.wait_for
swallowed exactly that one and `saltgw run` never stopped)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from drivers.base import DeviceFault, DeviceOffline, Reading
from gateway.supervisor import AlarmLimiter, DeviceState, DeviceSupervisor, State


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


# --- backoff, online after a good read, rate-limited alarms (issue 13) -------------------------


class FakeClock:
    """A monotonic clock that only the supervisor's (injected) sleeps advance."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.now += secs
        await asyncio.sleep(0)


class Scripted:
    """A polled driver playing a script per connection: each session is a list of read
    outcomes (``"ok"``, ``"fault"``, ``"offline"``); a session string ``"refuse"`` fails the
    connect. After the last session it cancels the supervisor."""

    online_after_first_read = True

    def __init__(self, sessions: list[list[str] | str], clock: FakeClock) -> None:
        self.sessions = sessions
        self.clock = clock
        self.connects = 0
        self.current: list[str] = []
        self.task: asyncio.Task[None] | None = None
        self.readings = 0

    async def connect(self) -> None:
        if self.connects == len(self.sessions):
            assert self.task is not None
            self.task.cancel()
            await asyncio.sleep(0)
        script = self.sessions[self.connects]
        self.connects += 1
        if script == "refuse":
            raise DeviceOffline("connection refused")
        assert isinstance(script, list)
        self.current = list(script)

    async def read(self) -> Reading:
        from datetime import UTC, datetime

        self.clock.now += 0.2  # a poll takes time
        await asyncio.sleep(0)
        what = self.current.pop(0) if self.current else "offline"
        if what == "fault":
            raise DeviceFault("modbus exception 4 (server device failure)")
        if what == "offline":
            raise DeviceOffline("no valid response")
        self.readings += 1
        return Reading("cw1", datetime.now(UTC), {"count": self.readings}, {})

    async def close(self) -> None:
        return None


def supervise(
    sessions: list[list[str] | str], **kw: Any
) -> tuple[list[tuple[DeviceState, DeviceState | None]], FakeClock, DeviceSupervisor]:
    clock = FakeClock()
    driver = Scripted(sessions, clock)
    changes: list[tuple[DeviceState, DeviceState | None]] = []
    sup = DeviceSupervisor(
        "cw1",
        driver,
        _ignore,
        lambda s, p: changes.append((s, p)),
        clock=clock,
        sleep=clock.sleep,
        **kw,
    )

    async def main() -> None:
        driver.task = asyncio.create_task(sup.run())
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(driver.task, timeout=10)

    asyncio.run(main())
    return changes, clock, sup


def alarms(
    changes: list[tuple[DeviceState, DeviceState | None]],
) -> list[tuple[str, str | None, int]]:
    """The changes the runtime turns into alarm.device: (state, previous, suppressed)."""
    return [
        (str(s.state), str(p.state) if p else None, s.suppressed)
        for s, p in changes
        if s.alarm and not (s.state == State.ONLINE and p is None)
    ]


def test_backoff_grows_over_failed_reads_and_the_device_is_never_online() -> None:
    """A device that accepts the connection but fails every read: one alarm (fault), never
    online, and the waits grow like those of a refused connect (0.5, 1, 2, 4, 8, 10 s + jitter)."""
    changes, clock, sup = supervise([["fault"]] * 8)
    assert [str(s.state) for s, _ in changes] == ["fault"]
    assert alarms(changes) == [("fault", None, 0)]
    base = [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert len(clock.sleeps) == len(base)
    for got, want in zip(clock.sleeps, base, strict=True):
        assert want <= got <= want + 0.5, clock.sleeps
    assert sup.stats.readings == 0 and sup.stats.errors == 8


def test_refused_connects_and_failed_reads_share_one_backoff() -> None:
    changes, clock, _ = supervise(["refuse", ["offline"], "refuse", ["offline"]])
    for got, want in zip(clock.sleeps, [0.5, 1, 2, 4], strict=True):  # never reset
        assert want <= got <= want + 0.5, clock.sleeps
    assert alarms(changes) == [("offline", None, 0)]


def test_backoff_starts_over_after_a_good_read() -> None:
    changes, clock, sup = supervise([["fault"], ["fault"], ["fault"], ["ok", "offline"], ["fault"]])
    assert 2 <= clock.sleeps[2] <= 2.5  # growing …
    assert clock.sleeps[3] == 0.5  # … reset by the good read: the next attempt comes soon
    assert 0.5 <= clock.sleeps[4] <= 1.0  # and grows again from the start
    assert sup.stats.readings == 1
    assert [str(s.state) for s, _ in changes] == ["fault", "online", "offline", "fault"]
    assert [a[0] for a in alarms(changes)] == ["fault", "online", "offline", "fault"]


def test_connect_alone_is_not_online_for_a_polled_driver() -> None:
    changes, _, _ = supervise([["offline"], ["ok", "ok", "fault"]])
    assert [str(s.state) for s, _ in changes] == ["offline", "online", "fault"]


def test_a_device_that_only_speaks_when_it_has_something_is_online_once_connected() -> None:
    class Scanner(CloseRacesStop):
        async def read(self) -> Reading:
            await asyncio.sleep(3600)  # nobody scans
            raise AssertionError

    async def main() -> list[str]:
        seen: list[str] = []
        sup = DeviceSupervisor("scan1", Scanner(), _ignore, lambda s, p: seen.append(s.state))
        task = asyncio.create_task(sup.run())
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(main()) == ["online"]


def test_a_flapping_device_raises_a_bounded_number_of_alarms() -> None:
    """Good read, then fault, on every connection: 60 flaps in about a minute of fake time.
    At most 6 alarms at once, then one per 30 s; the suppressed changes are counted in the
    next alarm, and every change still updates the state (the retained message)."""
    changes, clock, sup = supervise([["ok", "fault"]] * 60)
    elapsed = clock.now - 1000.0
    assert 30 < elapsed < 120
    got = alarms(changes)
    assert len(got) <= 6 + elapsed / 30 + 1, got
    assert len(changes) >= 119  # 60 x online and fault, every one on the state topic
    total_changes = len(changes) - 1  # the first online is not an alarm
    counted = len(got) + sum(n for *_, n in got)
    pending = sup._suppressed
    assert counted + pending == total_changes
    assert any(n > 0 for *_, n in got)
    assert sup.stats.alarms_suppressed == sum(n for *_, n in got) + pending


def test_the_last_alarm_tells_the_state_the_device_settled_in() -> None:
    """Flapping until the budget is spent (the last alarm says online), then the device stays
    in fault: once the limit allows, one alarm says fault, with the count, although no new
    change happened."""
    changes, clock, _ = supervise([["ok", "fault"]] * 10 + [["fault"]] * 8)
    got = alarms(changes)
    assert got[5] == ("online", "fault", 0)  # the sixth: the budget is spent
    assert str(changes[-1][0].state) == "fault"
    assert got[-1][:2] == ("fault", "online") and got[-1][2] > 0, got
    assert len(got) == 7
    late = next(s for s, _ in changes if s.alarm and s.suppressed)
    assert late.state == State.FAULT and clock.now - 1000.0 > 30


def test_alarm_limiter_is_a_token_bucket() -> None:
    now = [0.0]
    lim = AlarmLimiter(2, 10.0, lambda: now[0])
    assert lim.take() and lim.take() and not lim.take()
    assert lim.wait() == 10.0
    now[0] = 5.0
    assert not lim.take() and lim.wait() == 5.0
    now[0] = 10.0
    assert lim.take() and not lim.take()
    now[0] = 1000.0
    assert lim.take() and lim.take() and not lim.take()  # never more than the burst
    with pytest.raises(ValueError, match="burst"):
        AlarmLimiter(0, 1.0, lambda: 0.0)
