"""The poll schedule of the polling drivers (drivers/ticker.py) on an injected clock: ticks
every interval from the first poll whatever each poll took; a poll that overran its slot is
followed by one immediate poll and the cadence continues from there (no burst of missed
ticks); reset starts over."""

from __future__ import annotations

import pytest

from drivers.ticker import PollTicker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ticks_keep_the_interval_whatever_each_poll_took() -> None:
    clock = Clock()
    t = PollTicker(0.05, clock)
    assert t.delay() == 0.0  # the first poll at once
    for took in (0.0, 0.01, 0.049, 0.02):
        clock.now += took  # the poll's own time comes off the wait
        assert t.delay() == pytest.approx(0.05 - took)
        clock.now += 0.05 - took


def test_an_overrun_is_followed_by_one_immediate_poll_then_the_cadence_not_a_burst() -> None:
    clock = Clock()
    t = PollTicker(0.05, clock)
    t.delay()
    clock.now += 0.3  # a slow consumer: six ticks missed
    assert t.delay() == 0.0  # one immediate poll ...
    assert t.delay() == pytest.approx(0.05)  # ... then a full interval: the missed are dropped
    clock.now += 0.05
    assert t.delay() == pytest.approx(0.05)


def test_reset_starts_over() -> None:
    clock = Clock()
    t = PollTicker(1.0, clock)
    t.delay()
    assert t.delay() == pytest.approx(1.0)
    t.reset()
    assert t.delay() == 0.0
