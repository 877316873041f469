"""Every bridge thread is supervised (gateway/bridge/service.py): one that raises is restarted
with backoff, counted and named by ``problems()`` (``/healthz``) while it waits; after
``RESTART_LIMIT`` failures in the window it gives up, and ``alive()`` turns False (the gateway
then stops with exit status 1)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gateway.bridge import service
from gateway.bridge.service import Bridge
from tests.support.bridge_env import bridge_config, wait


def _bridge(tmp_path: Path) -> Bridge:
    return Bridge(bridge_config(tmp_path, 1, "sup"), host="127.0.0.1", port=1)


def test_a_failing_thread_is_restarted_and_named_meanwhile(tmp_path: Path) -> None:
    b = _bridge(tmp_path)
    runs: list[float] = []
    done = threading.Event()

    def target() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 2:
            raise RuntimeError(f"boom {len(runs)}")
        done.set()
        b._stop.wait()

    b._spawn("bridge-test", target)
    wait(lambda: bool(b.failing), 5, "the first failure recorded")
    assert any("bridge: thread bridge-test failed (RuntimeError: boom" in p for p in b.problems())
    assert done.wait(15), "the thread was not restarted"
    assert b.restarts["bridge-test"] == 2 and not b.failing and b.alive()
    assert runs[2] - runs[1] >= runs[1] - runs[0] > 0.2  # backoff grows
    b._stop.set()


def test_a_thread_that_keeps_failing_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RESTART_LIMIT", 1)
    b = _bridge(tmp_path)

    def target() -> None:
        raise ValueError("always")

    b._spawn("bridge-test", target)
    wait(lambda: not b.alive(), 15, "the supervisor giving up")
    assert b.restarts["bridge-test"] == 1
    assert b.problems() == [
        "bridge: thread bridge-test has stopped (ValueError: always); the gateway is stopping"
    ]
