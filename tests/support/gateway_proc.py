"""``saltgw run --http`` as a subprocess for fault tests: its log through a pipe (so a file size
limit on the gateway never hits its own log), ``/healthz`` and ``/metrics`` scraped, SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.net import free_port

ROOT = Path(__file__).parents[2]


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    """Status and body; (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → ``{'name{labels}': value}`` (``_total`` kept as exposed)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


def metric(metrics: dict[str, float], name: str, labels: str = "") -> float:
    for key in (name + labels, name + "_total" + labels):
        if key in metrics:
            return metrics[key]
    raise AssertionError(f"no metric {name}{labels} among {sorted(metrics)[:60]}")


class GatewayProc:
    """One ``saltgw run CONFIG --http 127.0.0.1:PORT`` process; ``log`` collects every run."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        http_port: int | None = None,
        preexec: Callable[[], None] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.log = log
        self.http_port = http_port or free_port()
        self.preexec = preexec
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> GatewayProc:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        args = [sys.executable, "-m", "gateway", "run", str(self.config)]
        args += ["--http", f"127.0.0.1:{self.http_port}", *self.extra_args]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            preexec_fn=self.preexec,  # fault tests set resource limits in the child
        )
        self._pump = threading.Thread(target=self._copy_log, args=(self.proc,), daemon=True)
        self._pump.start()
        return self

    def _copy_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with self.log.open("ab") as f:
            for line in proc.stdout:
                f.write(line)
                f.flush()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(15)
        self._join_pump()

    def stop(self, timeout: float = 45) -> int:
        """SIGTERM and wait for the exit status; SIGKILL and fail when it hangs."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
                self._join_pump()
                raise AssertionError(
                    f"saltgw run did not stop within {timeout:g} s; its log ends:\n"
                    + self.log_text()[-4000:]
                ) from None
        self._join_pump()
        return int(self.proc.returncode)

    def _join_pump(self) -> None:
        if self._pump is not None:
            self._pump.join(10)
            self._pump = None

    # -- HTTP ---------------------------------------------------------------------------------
    def healthz(self) -> tuple[int, dict[str, Any]]:
        code, body = http_get(f"http://127.0.0.1:{self.http_port}/healthz")
        return code, (json.loads(body) if code in (200, 503) else {})

    def wait_serving(self, timeout: float = 60) -> None:
        """Until ``/healthz`` answers (the process is up and its signal handlers are set)."""
        deadline = time.monotonic() + timeout
        while self.healthz()[0] == 0:
            if not self.running():
                raise AssertionError(f"saltgw run exited early:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"saltgw run not serving HTTP after {timeout:g} s")
            time.sleep(0.05)

    def metrics(self) -> dict[str, float]:
        """The scrape; one retry, since a loaded 2-core machine can miss the first time-out."""
        for _ in range(2):
            code, body = http_get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10)
            if code == 200:
                return parse_metrics(body.decode())
        return {}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
