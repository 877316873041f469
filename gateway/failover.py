"""Broker failover: the ordered list of broker endpoints (``mqtt.urls``), the one in use, and
when to try which next. Shared by the gateway's forwarder (:mod:`gateway.mqtt`) and the bridge's
consumer (:mod:`gateway.bridge.ingest`, and the AMQP one of :mod:`gateway.bridge.amqp` over
the RabbitMQ nodes of ``bridge.amqp.urls``); each owns one :class:`BrokerRotation`.

Rules (docs/scaling.md, "Broker failover"):

- Endpoints are tried in the configured order, starting with the first. Every failure moves on
  to the next one: a connection attempt that fails (refused, unreachable, TLS, a CONNACK
  refusal, closed before CONNACK — :meth:`BrokerRotation.failed`) and a working session that
  ends (connection lost, keep-alive timeout, PUBACKs owed past ``mqtt.ack_timeout_secs`` —
  :meth:`BrokerRotation.lost`).
- After a working session ended, the next endpoint is tried at once: that is the failover. With
  a single endpoint, after ``reconnect_min_secs`` (with jitter), as before there was a list. The
  endpoint that was lost counts as the first failure of the round, so it is not tried again at
  once when the others fail too.
- Within a round the next endpoint is tried at once; when every endpoint failed in a row (a
  round), the next round waits ``min * 2 ** (rounds - 1)`` seconds times a jitter in
  [0.8, 1.2], never more than ``reconnect_max_secs`` (bounded exponential backoff).
- A connection the broker accepts (CONNACK success, :meth:`BrokerRotation.connected`) ends the
  backoff; when it is another endpoint than the previous session's, it is a *switch*
  (counted, timed, logged by the caller once).
- A session the broker ends within ``MIN_SESSION_SECS`` of accepting it, before it acknowledged
  anything (:meth:`BrokerRotation.worked`: a PUBACK, a SUBACK), is no working session but a
  failed attempt (:meth:`BrokerRotation.lost` counts it as one): a node that accepts and
  at once drops connections (RabbitMQ's MQTT plugin right after a peer died, while its client
  id registry settles; a broker that kicks a duplicate client id) is not hammered in a loop —
  the rounds' backoff applies, and the flapping settles (docs/scaling.md).
- There is no fail-back: a client stays on the endpoint that took over until that one fails
  (a switch costs a reconnect and, for the bridge, a session; see docs/scaling.md).

Time and randomness are injected (``clock``, ``rng``): tests/unit/test_failover.py drives them.
The loops that use this are non-blocking state machines (one thread runs paho's network loop
and the journal), so the schedule is a value they ask (:meth:`BrokerRotation.due`), not a
retrying call; tenacity's retry loop does not fit there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = [
    "BrokerRotation",
    "Endpoint",
    "OnRotation",
    "broker_address",
    "is_tls_url",
    "session_client_id",
]

MAX_EXPONENT = 16
MIN_SESSION_SECS = 1.0  # a session shorter than this counts as a failed attempt


def is_tls_url(url: str) -> bool:
    return urlsplit(url).scheme in ("mqtts", "ssl")


DEFAULT_PORTS = {"mqtts": 8883, "ssl": 8883, "amqp": 5672, "amqps": 5671}


def broker_address(url: SplitResult) -> tuple[str, int]:
    """(host, port) of a broker URL; the port defaults to 8883 with TLS, else 1883 (AMQP, the
    bridge's ``bridge.amqp.urls``: 5671 with TLS, else 5672)."""
    port = url.port or DEFAULT_PORTS.get(url.scheme, 1883)
    return url.hostname or "127.0.0.1", port


def session_client_id(base: str, endpoint_index: int) -> str:
    """The MQTT client id a clean-session client (the gateway's forwarder, the UNS and Sparkplug
    outputs) uses on endpoint ``endpoint_index`` (0-based): ``base`` on the first, ``{base}-e{n}``
    on endpoint n >= 2. Such a client resumes nothing, but a RabbitMQ 3.10 node keeps its QoS 1
    subscription in a queue named after the client id, homed on the node it first connected to
    and not replicated: once that node died, every other node refused the same id right after
    CONNACK (NOT_FOUND, home node down) until it came back. Another id per endpoint gets its own
    queue there. The bridge keeps one id: its persistent session is meant to be resumed."""
    return base if endpoint_index == 0 else f"{base}-e{endpoint_index + 1}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    index: int  # 0-based position in the list
    url: str
    host: str
    port: int

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, index: int, url: str) -> Endpoint:
        host, port = broker_address(urlsplit(url))
        return cls(index, url, host, port)


class BrokerRotation:
    """Which endpoint to connect to next, and when. Not thread-safe: one thread drives it
    (readers on other threads, e.g. /metrics, only read its plain attributes)."""

    def __init__(
        self,
        urls: Sequence[str],
        min_secs: float,
        max_secs: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not urls:
            raise ValueError("a broker rotation needs at least one endpoint")
        self.endpoints = tuple(Endpoint.parse(i, u) for i, u in enumerate(urls))
        self.min_secs = min_secs
        self.max_secs = max_secs
        self._clock = clock
        self._rng = rng or random.Random()
        self.index = 0  # the endpoint the next attempt goes to (or the session is on)
        self.in_use: Endpoint | None = None  # the endpoint of the working session, if any
        self.last_used: Endpoint | None = None  # the endpoint of the latest working session
        self.failures = 0  # failed attempts in a row since the last working session
        self.rounds = 0  # rounds in which every endpoint failed, since the last session
        self.switches = 0  # sessions on another endpoint than the session before
        self.switched_at: float | None = None  # clock() of the latest switch
        self.lost_at: float | None = None  # clock() when the latest working session ended
        self.connected_at: float | None = None  # clock() of the latest accepted connection
        self.flaps = 0  # sessions ended within MIN_SESSION_SECS (counted as failed attempts)
        self._worked = False  # the broker acknowledged something in the current session
        self._before = (0, 0)  # (failures, rounds) before the latest accepted connection
        self.next_at = 0.0

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self.index]

    @property
    def multiple(self) -> bool:
        return len(self.endpoints) > 1

    def due(self) -> bool:
        return self._clock() >= self.next_at

    def backoff(self, rounds: int) -> float:
        """The wait before the next round after ``rounds`` failed ones (>= 1), jittered."""
        base = self.min_secs * 2.0 ** min(max(rounds, 1) - 1, MAX_EXPONENT)
        return min(self.max_secs, base * self._rng.uniform(0.8, 1.2))

    def failed(self) -> float:
        """The attempt at :attr:`current` failed: move on; returns the wait before the next."""
        self.in_use = None
        self.failures += 1
        self._advance()
        delay = 0.0
        if self.failures % len(self.endpoints) == 0:  # every endpoint failed in this round
            self.rounds += 1
            delay = self.backoff(self.rounds)
        self.next_at = self._clock() + delay
        return delay

    def lost(self) -> float:
        """The working session on :attr:`current` ended (dropped, keep-alive, PUBACK timeout):
        move on to the next endpoint at once (one endpoint: after ``min_secs``). A session
        that lasted less than ``MIN_SESSION_SECS`` is a failed attempt instead (:meth:`failed`,
        counting on from the failures before it)."""
        now = self._clock()
        short = self.connected_at is not None and now - self.connected_at < MIN_SESSION_SECS
        if short and not self._worked:
            self.flaps += 1
            self.failures, self.rounds = self._before
            self.connected_at = None
            return self.failed()
        self.in_use = None
        self.failures, self.rounds = 1, 0  # the lost endpoint counts as failed in this round
        self.lost_at = self._clock()
        self._advance()
        delay = 0.0
        if not self.multiple:
            self.rounds = 1
            delay = self.backoff(1)
        self.next_at = self._clock() + delay
        return delay

    def connected(self) -> bool:
        """The broker at :attr:`current` accepted the connection; True when this is a switch
        (another endpoint than the previous working session's)."""
        ep = self.current
        switched = self.last_used is not None and self.last_used != ep
        self.in_use = self.last_used = ep
        self._before = (self.failures, self.rounds)
        self.connected_at = self._clock()
        self._worked = False
        self.failures = self.rounds = 0
        self.next_at = 0.0
        if switched:
            self.switches += 1
            self.switched_at = self._clock()
        return switched

    def worked(self) -> None:
        """The broker acknowledged something in this session (a PUBACK, a SUBACK): a working
        session, however short."""
        self._worked = True

    def _advance(self) -> None:
        self.index = (self.index + 1) % len(self.endpoints)


class OnRotation:
    """The endpoint in use of a client that holds a :class:`BrokerRotation` as ``rotation``
    (the gateway's MQTT link, the bridge's MQTT and AMQP consumers, the Sparkplug output):
    where it connects next, or is connected."""

    rotation: BrokerRotation

    @property
    def host(self) -> str:
        return self.rotation.current.host

    @property
    def port(self) -> int:
        return self.rotation.current.port

    @property
    def broker(self) -> str:
        """``host:port``, as logs and /healthz name it."""
        return self.rotation.current.name
