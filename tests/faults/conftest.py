"""Fault injection (issue 8): every test here is marked ``faults``; a broker whose sessions
survive its own SIGKILL (saved every second), for tests that kill it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto, mosquitto_available

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def durable_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """mosquitto saving its persistent sessions every second, so that a subscriber's session
    (its subscription) survives ``kill -9`` of the broker and nothing published after a restart
    falls on a broker that forgot the subscriber."""
    if not mosquitto_available():
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (CI must install it: see .ci/run)")
        pytest.skip("mosquitto is not installed")
    broker = Mosquitto(tmp_path / "mosquitto", extra_conf="autosave_interval 1\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()
