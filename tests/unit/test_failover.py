"""The broker rotation (gateway/failover.py) on an injected clock and random source."""

from __future__ import annotations

import random

import pytest

from gateway.failover import BrokerRotation

A, B, C = "mqtt://10.0.0.1:1883", "mqtt://10.0.0.2", "mqtt://10.0.0.3:1884"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rotation(*urls: str, lo: float = 0.5, hi: float = 8.0) -> tuple[BrokerRotation, Clock]:
    clock = Clock()
    return BrokerRotation(urls, lo, hi, clock=clock, rng=random.Random(7)), clock


def test_endpoints_are_parsed_in_order_with_default_ports() -> None:
    rot, _ = rotation(A, B, C, "mqtts://broker.example")
    assert [e.name for e in rot.endpoints] == [
        "10.0.0.1:1883", "10.0.0.2:1883", "10.0.0.3:1884", "broker.example:8883",
    ]  # fmt: skip
    assert rot.current.index == 0 and rot.due()
    with pytest.raises(ValueError, match="at least one endpoint"):
        BrokerRotation([], 1, 2)


def test_a_lost_session_moves_to_the_next_endpoint_at_once() -> None:
    rot, clock = rotation(A, B, C)
    assert rot.connected() is False  # the first session is no switch
    assert rot.in_use is not None and rot.in_use.name == "10.0.0.1:1883"
    clock.now += 60  # a working session
    assert rot.lost() == 0.0
    assert rot.in_use is None and rot.current.name == "10.0.0.2:1883" and rot.due()
    assert rot.lost_at == clock.now
    clock.now += 0.3
    assert rot.connected() is True
    assert rot.switches == 1 and rot.switched_at == 1060.3
    assert rot.in_use is not None and rot.in_use.index == 1


def test_within_a_round_the_next_endpoint_is_tried_at_once_then_backoff_grows() -> None:
    rot, clock = rotation(A, B, C, lo=0.5, hi=8.0)
    delays = []
    for _ in range(15):  # five rounds of three failed attempts
        delays.append(rot.failed())
        assert not rot.due() or delays[-1] == 0.0
        clock.now = rot.next_at
        assert rot.due()
    # every third failure ends a round: only then a wait, doubling, jittered, capped
    waits = delays[2::3]
    assert delays[0::3] == delays[1::3] == [0.0] * 5
    for rounds, w in enumerate(waits, 1):
        base = 0.5 * 2 ** (rounds - 1)
        assert min(8.0, base * 0.8) <= w <= min(8.0, base * 1.2), (rounds, w)
    assert waits[-1] <= 8.0 and rot.rounds == 5
    assert [rot.current.index] == [0]  # fifteen failures: back at the first
    assert rot.switches == 0 and rot.in_use is None


def test_a_session_resets_the_backoff() -> None:
    rot, clock = rotation(A, B)
    for _ in range(6):
        rot.failed()
    assert rot.rounds == 3
    clock.now = rot.next_at
    rot.connected()  # on A again (six failures: index 0)
    assert rot.rounds == rot.failures == 0 and rot.switches == 0
    clock.now += 60
    assert rot.lost() == 0.0 and rot.current.index == 1
    # B fails too: with the lost A that is a round, so A is not hammered at once
    assert 0.4 <= rot.failed() <= 0.6 and not rot.due() and rot.current.index == 0


def test_the_switch_is_counted_against_the_last_working_session() -> None:
    """Failed attempts in between do not count: A, then B fails, C fails, A again is no
    switch; A, then C is one."""
    rot, clock = rotation(A, B, C)
    rot.connected()
    rot.lost()  # -> B
    rot.failed()  # -> C
    rot.failed()  # -> A, after a wait: A, B and C failed in this round
    assert rot.rounds == 1 and not rot.due()
    clock.now = rot.next_at
    assert rot.connected() is False and rot.switches == 0
    rot.lost()  # -> B
    rot.failed()  # -> C
    clock.now += 1
    assert rot.connected() is True and rot.switches == 1 and rot.current.index == 2


def test_one_endpoint_waits_before_reconnecting_as_before() -> None:
    rot, clock = rotation(A, lo=0.5, hi=8.0)
    rot.connected()
    clock.now += 60
    wait = rot.lost()
    assert 0.4 <= wait <= 0.6 and not rot.due()
    assert rot.current.index == 0 and not rot.multiple
    clock.now += wait
    assert rot.due()
    for rounds in range(2, 9):  # each failure is a round of one: 1, 2, 4, 8 (cap) s
        base = 0.5 * 2 ** (rounds - 1)
        assert min(8.0, base * 0.8) <= rot.failed() <= min(8.0, base * 1.2)


def test_a_session_dropped_right_after_it_was_accepted_counts_as_a_failed_attempt() -> None:
    """Measured on RabbitMQ 3.10 after a node was killed: the other nodes accepted the gateway
    and dropped it within milliseconds, 700 times in 30 s, while each lost session moved on at
    once. Flapping sessions now go through the rounds' backoff like refused connections."""
    rot, clock = rotation(A, B, C, lo=0.5, hi=8.0)
    rot.connected()
    clock.now += 60
    assert rot.lost() == 0.0  # A died after a working session: B at once
    waits = []
    for _ in range(9):  # B, C, A, ... each accepts and drops within 20 ms
        clock.now = rot.next_at
        rot.connected()
        clock.now += 0.02
        waits.append(rot.lost())
    assert rot.flaps == 9
    # the lost A opened the round: B, C flap -> a round (wait), then A, B, C -> a round ...
    assert waits[0] == 0.0 and 0.4 <= waits[1] <= 0.6
    rounds = [w for w in waits if w > 0]
    assert len(rounds) == 3 and rounds == sorted(rounds) and rounds[-1] >= 1.6
    # a short session in which the broker acknowledged something worked: the next at once
    clock.now = rot.next_at
    rot.connected()
    clock.now += 0.02
    rot.worked()
    assert rot.lost() == 0.0 and rot.rounds == 0 and rot.flaps == 9
    # a session that holds ends the backoff again
    clock.now = rot.next_at
    rot.connected()
    clock.now += 5
    assert rot.lost() == 0.0 and rot.rounds == 0


def test_clean_session_clients_use_another_client_id_per_endpoint() -> None:
    """A RabbitMQ 3.10 node refused a gateway's id while the node homing its subscription
    queue was down (tests/integration/test_enterprise.py kills it)."""
    from gateway.failover import session_client_id

    assert session_client_id("saltgw-gw-1", 0) == "saltgw-gw-1"  # one broker: as always
    assert session_client_id("saltgw-gw-1", 1) == "saltgw-gw-1-e2"
    assert session_client_id("saltgw-gw-1", 2) == "saltgw-gw-1-e3"
