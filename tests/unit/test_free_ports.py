"""tests/support/net.py's free ports stay out of the kernel's ephemeral range (where a child
process's own port or any client's local port can take them before they are bound) and are
never handed out twice by one process."""

from __future__ import annotations

import socket

from tests.support.net import _ephemeral_low, free_port


def test_free_ports_are_below_the_ephemeral_range_distinct_and_bindable() -> None:
    low = _ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    if low - 10_000 >= 1_000:
        assert all(10_000 <= p < low for p in ports), (low, ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # free when handed out
