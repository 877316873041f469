from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.logs import QUIETED_LOGGERS, SALTGW_HANDLER
from tests.support.broker import Mosquitto, mosquitto_available

# in CI a skip fails the run; processes left running are stopped at the end (leaks); the
# browser and HTTPS-proxy fixtures (browser, screenshot, https_proxy)
pytest_plugins = [
    "tests.support.ci_skips",
    "tests.support.leaks",
    "tests.support.browser",
    "tests.support.nginx",
    "tests.support.postgres",
    "tests.support.stores",
]


def pytest_collection_finish(session: pytest.Session) -> None:
    """What exists once the tests are collected (the modules every test imports, their classes
    and functions, the test items) lives to the end of the session: moved to the collector's
    permanent generation (``gc.freeze``), the full collection after every test below no longer
    walks it. That walk was about half of the unit tests' CPU time (~0.1 s a test over ~80 000
    objects). Everything made after this point is still collected after every test."""
    gc.collect()
    gc.freeze()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Finalise what a test left behind (asyncua's server tasks) here, at a known point: a
    collection that runs those finalisers inside CPython 3.11's AST builder (an import that
    pytest rewrites, an ``ast.parse``) raises "SystemError: AST constructor recursion depth
    mismatch" (CPython gh-106905), seen once mid-suite and once at the session's end."""
    gc.collect()


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in-process (``main([...])``) sets up logging: a handler named ``saltgw``
    on the root logger, on that test's captured stderr. Left in place it would write to a
    closed file in every later test ("--- Logging error ---")."""
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in ("", *QUIETED_LOGGERS)}
    yield
    root.handlers[:] = [h for h in root.handlers if h.get_name() != SALTGW_HANDLER]
    for name, level in levels.items():  # setup_logging quiets the stacks' loggers too
        logging.getLogger(name).setLevel(level)


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

