"""Child processes of the benchmarks that run whole programs (``saltgw sim``, ``saltgw run``, a
baseline publisher): starting and stopping them, waiting for their ports, and their CPU time and
memory from /proc. Shared by bench/telemetry_rate.py and bench/telemetry_outage.py."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["free_port_run", "proc_cpu_s", "start", "status_kb", "stop", "wait_ports"]

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def free_port_run(n: int, attempts: int = 200) -> int:
    """A first port of ``n`` consecutive free loopback ports."""
    for _ in range(attempts):
        base = random.randint(20000, 60000 - n)
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no run of {n} free ports found")


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def status_kb(pid: int, key: str) -> int:
    """A kB figure of /proc/PID/status (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def start(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """``args`` in ``cwd``, stdout and stderr appended to ``log``, the repository importable."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with log.open("ab") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ports(
    ports: list[int], proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    """Until every port listens on 127.0.0.1; RuntimeError when ``proc`` exits first or after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-800:]
                raise RuntimeError(f"{proc.args!r} exited ({proc.returncode}): {tail}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"port {port} not listening after {timeout:.0f} s (see {log})"
                    ) from None
                time.sleep(0.1)
