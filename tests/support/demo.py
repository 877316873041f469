"""``saltgw demo`` started by an end-to-end test, and its output read line by line.

The tests run the demo line with every simulator on a port picked free a moment before
(tests/support/net.py). Another process on the machine can still take one of those ports before
the demo binds it: the demo then stops before its first line with "simulator … cannot listen on
…" (firmware-sim/runner.py), as a user's demo would on a taken port. That is the machine, not
the code under test, so :func:`start_demo` picks new ports and starts again (a bounded number of
times, each one said on the test's output); every other early exit fails the test at once with
the demo's stderr, instead of a wait for a line that never comes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.configs import demo_line_on_free_ports
from tests.support.procs import ROOT

ATTEMPTS = 3  # starts of the demo on freshly picked ports, at most
PORT_TAKEN = "cannot listen on"  # firmware-sim/runner.py: a simulator's port was taken


def demo_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", "--log-level", "warning", "demo", *args]


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Lines:
    """A child's output, read line by line on a thread (the pipe never fills up). A wait ends
    early, with an AssertionError, once the child has closed its output."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def first(self, timeout: float) -> str:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self.lines) or self.ended, timeout):
                raise AssertionError(f"no output within {timeout} s")
            if not self.lines:
                raise AssertionError("the output ended before its first line")
            return self.lines[0]

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first line matching ``pattern`` (``re.match``), waiting up to ``timeout`` s."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for x in self.lines if (m := re.match(pattern, x))][:1]
            return bool(found) or self.ended

        with self._cond:
            if not self._cond.wait_for(seen, timeout) or not found:
                how = "the output ended" if self.ended else f"{timeout} s passed"
                raise AssertionError(f"no line matching {pattern!r} ({how}) in {self.lines[:10]}")
        return found[0]

    def join(self, timeout: float) -> list[str]:
        self._thread.join(timeout)
        return list(self.lines)


@dataclass
class Demo:
    """A running ``saltgw demo``: its process, its output, the line it runs and its stderr."""

    proc: subprocess.Popen[str]
    out: Lines
    line: Path
    stderr: Path

    def stop(self, timeout: float = 60.0) -> int | None:
        """Kill it if it still runs (a test's ``finally``); its exit code if it had ended."""
        code = self.proc.poll()
        if code is None:
            self.proc.kill()
            self.proc.wait(timeout)
        return code


def start_demo(
    tmp: Path,
    args: Sequence[str],
    *,
    line: Callable[[Path], Path] = demo_line_on_free_ports,
    env: dict[str, str] | None = None,
    first_line_secs: float = 90.0,
) -> Demo:
    """``saltgw demo --config LINE *args`` in ``tmp``, once it has printed its first line (the
    simulators listen by then). ``line(dir)`` writes the line's config on free ports into
    ``dir``; it is called again, in a new directory, when a port was taken meanwhile."""
    for attempt in range(1, ATTEMPTS + 1):
        work = tmp if attempt == 1 else tmp / f"demo-attempt-{attempt}"
        work.mkdir(parents=True, exist_ok=True)
        config = line(work)
        err = work / "stderr.log"
        with err.open("w") as errf:
            proc = subprocess.Popen(
                demo_cmd("--config", str(config), *args),
                stdout=subprocess.PIPE,
                stderr=errf,
                text=True,
                env=demo_env() if env is None else env,
                cwd=tmp,
            )
        out = Lines(proc.stdout)  # type: ignore[arg-type]
        demo = Demo(proc, out, config, err)
        try:
            out.first(first_line_secs)
            return demo
        except AssertionError:
            demo.stop()
            text = err.read_text()
            if PORT_TAKEN not in text or attempt == ATTEMPTS:
                raise AssertionError(
                    f"saltgw demo ended before its first line (exit {proc.returncode}, "
                    f"attempt {attempt}):\n{text[-3000:]}"
                ) from None
            taken = [x for x in text.splitlines() if PORT_TAKEN in x][-1]
            print(f"start_demo: a port was taken meanwhile, new ports ({taken})")
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
