"""Free loopback ports and waiting for them.

A port picked here is handed to something that binds it a little later (a simulator, a broker,
a child process). Ports the kernel hands out by itself (``bind(..., 0)``, and the local side of
every outgoing connection: the gateway's MQTT client, a subprocess's own free port) come from
the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 on Linux), so a
port picked in that range can be taken meanwhile — a demo starting its resolver, console and
clients lost a simulator's port that way ("address already in use"). Ports are therefore picked
below the ephemeral range, at random (other test runs on the machine pick too), never twice in
one process, and checked free by binding them.
"""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

_LOWEST = 10_000
_handed: set[int] = set()
_rng = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port nothing listens on, outside the kernel's ephemeral range."""
    high = _ephemeral_low() - 1
    if high - _LOWEST >= 1_000:
        for _ in range(200):
            port = _rng.randint(_LOWEST, high)
            if port not in _handed and _bindable(port):
                _handed.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # no room below: the kernel's
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")
