"""A broker's refusal in a PUBACK (MQTT 5): the message was *not* accepted.

An MQTT 5 PUBACK carries a reason code; one of 0x80 and above is a refusal (0x80 unspecified
error, 0x83 implementation specific error, 0x87 not authorized — mosquitto's answer when its
ACL denies the publish —, 0x90 topic name invalid, 0x97 quota exceeded, 0x99 payload format
invalid). 0x10 "no matching subscribers" is a success. An MQTT 3.1.1 PUBACK has no code: it is
always an acceptance. What happens to a refused message:

- A journaled event stays in the journal, undelivered (its row is acknowledged only on an
  accepting PUBACK) and is sent again by the forwarder, read anew from the journal by ``seq``,
  out of order with newer events if need be: consumers order by ``seq`` and de-duplicate by
  ``id``; the bridge stores a late ``seq`` and fills its gap (gateway/bridge/gaps.py).
- Retries back off per *topic* (:class:`RetryQueue`): the first refusal on a topic waits
  ``min_secs``; then one event of the topic (its lowest waiting ``seq``) is sent as a probe,
  each probe doubling the wait up to ``max_secs`` (60 s). Once the broker accepts anything on
  the topic again (the probe, or a newer event), every waiting event of it is sent at once
  (within the in-flight window). A refusal on an accepted topic starts again from ``min_secs``.
- A control message (not journaled: status, KPI, seq mark, replay) is logged and counted, and
  not sent again; the next value of its topic replaces it anyway.
- Logged: one ERROR per topic and reason code until the broker accepts that topic again (then
  one INFO), counted by reason (``LinkStats.refused``, ``saltgw_mqtt_publish_refused_total``).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "REFUSED_RETRY_MAX_SECS",
    "Refusal",
    "RefusalLog",
    "RetryQueue",
    "is_refusal",
    "reason_label",
]

log = logging.getLogger(__name__)

REFUSED_RETRY_MAX_SECS = 60.0  # the longest wait between two probes of a refused topic
REFUSAL_FROM = 0x80  # MQTT 5: reason codes from here on are failures


def is_refusal(code: int) -> bool:
    """A PUBACK reason code that says the broker did not accept the message."""
    return code >= REFUSAL_FROM


def reason_label(name: str) -> str:
    """A reason's name as a metric label: ``Not authorized`` -> ``not_authorized``."""
    return "_".join(name.lower().split()) or "unknown"


@dataclass(frozen=True, slots=True)
class Refusal:
    seq: int | None  # the journal seq (None: a control message)
    topic: str
    code: int
    name: str  # the reason code's name, e.g. "Not authorized"


class RefusalLog:
    """One ERROR per (topic, reason code) until the topic is accepted again, then one INFO."""

    def __init__(self) -> None:
        self.refusing: dict[str, dict[int, int]] = {}  # topic -> reason code -> refusals

    def refused(self, r: Refusal, broker: str) -> None:
        codes = self.refusing.setdefault(r.topic, {})
        if r.code not in codes:
            log.error(
                "MQTT broker %s refused a message on %r: 0x%02X %s; %s (said once per topic "
                "and reason until the broker accepts the topic again)",
                broker, r.topic, r.code, r.name,
                "the event stays in the journal and is sent again with backoff"
                if r.seq is not None else "not journaled, not sent again",
            )  # fmt: skip
        codes[r.code] = codes.get(r.code, 0) + 1

    def accepted(self, topic: str, broker: str) -> bool:
        """The broker accepted a message on ``topic``; True when it had refused the topic."""
        codes = self.refusing.pop(topic, None)
        if codes is None:
            return False
        log.info("MQTT broker %s accepts %r again (%d messages refused meanwhile)",
                 broker, topic, sum(codes.values()))  # fmt: skip
        return True


@dataclass(slots=True)
class _Topic:
    waiting: list[int] = field(default_factory=list)  # a heap of seqs
    attempts: int = 0  # probes (plus the first refusal) since the topic was last accepted
    next_at: float = 0.0


class RetryQueue:
    """Refused journal rows waiting to be sent again, with a backoff per topic (module doc).

    Single-threaded (the forwarder's thread); :attr:`outstanding` may be read by others: the
    seqs refused and not yet delivered (waiting, or sent again and not yet acknowledged)."""

    def __init__(
        self,
        min_secs: float,
        max_secs: float = REFUSED_RETRY_MAX_SECS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_secs = min_secs
        self.max_secs = max(min_secs, max_secs)
        self.clock = clock
        self._topics: dict[str, _Topic] = {}
        self.outstanding: set[int] = set()

    def delay(self, attempts: int) -> float:
        return min(self.max_secs, self.min_secs * 2.0 ** min(attempts - 1, 32))

    @property
    def waiting(self) -> int:
        """Refused seqs not yet handed out again."""
        return sum(len(t.waiting) for t in self._topics.values())

    def refused(self, seq: int, topic: str) -> None:
        st = self._topics.get(topic)
        if st is None:
            st = self._topics[topic] = _Topic()
        if st.attempts == 0:  # the first refusal since the topic was accepted: start backoff
            st.attempts = 1
            st.next_at = self.clock() + self.delay(1)
        heapq.heappush(st.waiting, seq)  # each seq is in flight once: refused once per send
        self.outstanding.add(seq)

    def accepted(self, topic: str) -> None:
        """The broker accepted a message on ``topic``: its waiting seqs are due now."""
        st = self._topics.get(topic)
        if st is not None:
            st.attempts, st.next_at = 0, 0.0

    def due(self, limit: int) -> list[int]:
        """Seqs to send again now, at most ``limit``, lowest first per topic: all of an
        accepted topic's, one probe of a topic still in backoff whose wait is over."""
        now = self.clock()
        out: list[int] = []
        for topic, st in list(self._topics.items()):
            if len(out) >= limit:
                break
            if st.waiting and now >= st.next_at:
                if st.attempts == 0:
                    while st.waiting and len(out) < limit:
                        out.append(heapq.heappop(st.waiting))
                else:
                    out.append(heapq.heappop(st.waiting))
                    st.attempts += 1
                    st.next_at = now + self.delay(st.attempts)
            if not st.waiting and st.attempts == 0:
                del self._topics[topic]
        return out

    def next_due(self) -> float | None:
        """When the next seq is due (monotonic), None when none waits."""
        times = [st.next_at for st in self._topics.values() if st.waiting]
        return min(times) if times else None

    def delivered(self, seqs: list[int]) -> None:
        """The broker accepted these (journal rows acknowledged)."""
        if self.outstanding:
            self.outstanding.difference_update(seqs)

    def forget(self, seq: int) -> None:
        """No longer in the journal undelivered (dropped by ``when_full: drop_oldest``)."""
        self.outstanding.discard(seq)
        for st in self._topics.values():
            if seq in st.waiting:
                st.waiting.remove(seq)
                heapq.heapify(st.waiting)
