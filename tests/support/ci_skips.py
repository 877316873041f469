"""A pytest plugin: in CI (``CI=true``) a skipped test fails the run, unless the test needs an
optional extra listed in :data:`OPTIONAL_IN_CI`.

A skip on a developer's machine says "install X to run this"; in CI the machine was set up by
``scripts/test.sh``, so a skip there hides a test that never ran (issue 12: TLS tests and lint
skipped silently on a fresh clone while CI was green).
"""

from __future__ import annotations

import os

import pytest

__all__ = ["OPTIONAL_IN_CI"]

OPTIONAL_IN_CI = {
    "tests/fuzz/test_atheris.py": "atheris is an optional fuzzer (pip install atheris)",
}
_skipped: list[tuple[str, str]] = []


def _allowed(nodeid: str) -> bool:
    return nodeid.split("::", 1)[0] in OPTIONAL_IN_CI


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if os.environ.get("CI") and report.skipped and not _allowed(report.nodeid):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.section("skipped in CI, not on the optional list: a failure", red=True)
        for nodeid, reason in _skipped:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
