"""Replay: a subscriber that found a gap in a gateway's ``seq`` asks the gateway to publish those
events again (docs/architecture.md, "Replay").

- Topic: ``{prefix}/{enterprise}/{site}/gateway/{gateway_id}/replay`` (QoS 1, not retained),
  payload ``{"from": A, "to": B}`` and optionally ``"reply": TOPIC`` (no wildcards).
- The gateway re-publishes the journaled events with ``seq`` in ``[A, B]`` it still holds —
  delivered ones within ``journal.keep_delivered_*``, and not-yet-delivered ones are skipped
  (the forwarder sends those anyway) — *unchanged*: same ``id``, same ``seq``, same topic, QoS 1.
  Subscribers de-duplicate by ``id`` (the contract). With ``reply``, it answers there with
  ``{"from": A, "to": B, "replayed": N, "unavailable": [[lo, hi], …]}`` (``unavailable``: seqs
  no longer in the journal: past the window, or dropped by ``when_full: drop_oldest``), or
  ``{"error": "…"}`` for a request it refuses.
- A request is peer input, checked like any: at most :data:`MAX_REQUEST_BYTES`, a JSON object,
  ``1 ≤ from ≤ to``, ``to - from < MAX_RANGE``; at most :data:`RATE_PER_SEC` requests a second
  (a token bucket) and :data:`MAX_QUEUED` waiting; what it refuses is logged (rate-limited)
  and answered when it names a reply topic. Nothing a request holds can stop the forwarder.
- The forwarder thread serves queued requests between journal rows, at most
  :data:`ROWS_PER_PASS` rows per pass, so replays never starve live events.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.journal import JournalReader
    from gateway.mqtt import MqttLink

__all__ = ["BadReplay", "Replay", "Replayer", "parse_request", "replay_topic"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024
MAX_RANGE = 1000
MAX_QUEUED = 16
RATE_PER_SEC = 2.0
BURST = 5
ROWS_PER_PASS = 200


def replay_topic(prefix: str, enterprise: str, site: str, gateway: str) -> str:
    return f"{prefix}/{enterprise}/{site}/gateway/{gateway}/replay"


class BadReplay(ValueError):
    """A replay request that is refused; the message says why."""


@dataclass(slots=True)
class Replay:
    lo: int
    hi: int
    reply: str | None
    next_seq: int = 0
    replayed: int = 0


def _int(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise BadReplay(f"{key!r} must be a positive integer; got {v!r}"[:200])
    return v


def parse_request(payload: bytes) -> Replay:
    """The request in ``payload``; :class:`BadReplay` naming what is wrong."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise BadReplay(f"request of {len(payload)} bytes (at most {MAX_REQUEST_BYTES})")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadReplay(f"not JSON: {exc}"[:200]) from None
    if not isinstance(obj, dict):
        raise BadReplay(f"a request is a JSON object; got {type(obj).__name__}")
    lo, hi = _int(obj, "from"), _int(obj, "to")
    if lo > hi:
        raise BadReplay(f"'from' {lo} is after 'to' {hi}")
    if hi - lo >= MAX_RANGE:
        raise BadReplay(f"{hi - lo + 1} events asked (at most {MAX_RANGE} a request)")
    reply = obj.get("reply")
    if reply is not None and (
        not isinstance(reply, str)
        or not reply
        or len(reply) > 256
        or any(c in reply for c in "+#\x00")
    ):
        raise BadReplay(f"'reply' must be a topic without wildcards; got {reply!r}"[:200])
    return Replay(lo, hi, reply, next_seq=lo)


class Replayer:
    """Queued replay requests, served on the forwarder thread (:meth:`pump`)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.queue: deque[Replay] = deque()
        self.tokens = float(BURST)
        self.last = clock()
        self.served = 0
        self.refused = 0
        self.replayed = 0
        self._answers: list[tuple[str, bytes]] = []
        self._last_warning = float("-inf")

    # -- the MQTT handler (forwarder thread, inside paho's loop: must not block) -----------------
    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        now = self.clock()
        self.tokens = min(BURST, self.tokens + (now - self.last) * RATE_PER_SEC)
        self.last = now
        reply = None
        try:
            if retained:
                raise BadReplay("a retained request is refused (it would replay on every connect)")
            req = parse_request(payload)
            reply = req.reply
            if self.tokens < 1 or len(self.queue) >= MAX_QUEUED:
                raise BadReplay(f"too many requests (at most {RATE_PER_SEC:g} a second)")
            self.tokens -= 1
            self.queue.append(req)
        except BadReplay as exc:
            self.refused += 1
            if now - self._last_warning > 10:
                self._last_warning = now
                log.warning("replay request on %r refused: %s", topic, exc)
            if reply is not None:
                self._answers.append((reply, json.dumps({"error": str(exc)}).encode()))

    @property
    def pending_answers(self) -> bool:
        return bool(self._answers)

    # -- the forwarder's pass ---------------------------------------------------------------
    def pump(self, link: MqttLink, reader: JournalReader, topic_of: Callable[[str], str]) -> bool:
        """Publish answers and up to :data:`ROWS_PER_PASS` replayed rows; True if any."""
        sent = False
        while self._answers:
            topic, body = self._answers.pop(0)
            link.publish(topic, body)
            sent = True
        budget = ROWS_PER_PASS
        while self.queue and budget > 0:
            req = self.queue[0]
            asked = budget
            rows = reader.delivered_between(req.next_seq, req.hi, asked)
            for row in rows:  # unchanged: same id, seq and topic; not journaled again
                link.publish(topic_of(row.type), row.payload)
                req.replayed += 1
                req.next_seq = row.seq + 1
            budget -= len(rows)
            sent = sent or bool(rows)
            if len(rows) < asked or req.next_seq > req.hi:  # this one is done
                self.queue.popleft()
                self.served += 1
                self.replayed += req.replayed
                if req.reply is not None:
                    held = reader.seqs_between(req.lo, req.hi)
                    answer = {"from": req.lo, "to": req.hi, "replayed": req.replayed,
                              "unavailable": _missing(req.lo, req.hi, held)}  # fmt: skip
                    link.publish(req.reply, json.dumps(answer).encode())
                log.info("replayed %d events of seq %d..%d", req.replayed, req.lo, req.hi)
        return sent


def _missing(lo: int, hi: int, held: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    expect = lo
    for s in held:
        if s > expect:
            out.append([expect, s - 1])
        expect = s + 1
    if expect <= hi:
        out.append([expect, hi])
    return out
