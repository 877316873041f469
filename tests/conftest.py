from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto, mosquitto_available

pytest_plugins = ["tests.support.ci_skips"]  # in CI a skip fails the run


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if not mosquitto_available():
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (CI must install it: see .ci/run)")
        pytest.skip("mosquitto is not installed")
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()

