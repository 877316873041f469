"""Which RabbitMQ queue holds a line's events, what it is bound to, and which bridge prefers it.

Pure functions (no broker, no pika): tests/unit/test_bridge_amqp_lines.py checks them.

- **Queue**: ``{queue_prefix}.{enterprise}.{site}.{line}``, durable, ``x-queue-type: quorum``
  (replicated on the cluster's nodes), ``x-single-active-consumer: true`` (one bridge at a
  time receives the line, in queue order; the others wait as standby consumers).
- **Bindings**: RabbitMQ's MQTT plugin (3.10) publishes an MQTT message to the topic exchange
  (``amq.topic``) with the routing key made of its topic by replacing every ``/`` with ``.``
  (``salt/v1/8035/daiyue/L1/event/pack/bag`` → ``salt.v1.8035.daiyue.L1.event.pack.bag``);
  a ``.`` inside a topic level stays a ``.`` and so reads as a level separator there. A line's
  queue is bound with ``{prefix}.{enterprise}.{site}.{line}.event.#`` and ``….alarm.#``.
  Enterprise, site and line ids have no ``.`` (gateway.config ``ID_RE``), so a binding matches
  exactly that line's events; a ``.`` in an event type's name (after ``event/{group}/``) falls
  under the ``#``.
- **Topic back**: the store is given ``routing_key.replace(".", "/")`` as the message's topic
  (it reads the event from the payload; the topic only tells seq marks apart and is kept with
  a quarantined message), so a ``.`` in a topic level comes back as ``/`` there.
- **Spreading** (:func:`assign`): rendezvous hashing with bounded loads. Each bridge of
  ``bridge.amqp.bridges`` scores a line ``sha256("{bridge}/{site}/{line}")``; taking the lines
  in name order, each goes to its highest-scoring bridge that holds fewer than
  ``ceil(lines / bridges)`` so far. Plain rendezvous hashing left 16 of 20 lines on one of two
  bridges in the scale test (bench/scale.py); with the bound no bridge holds more than its
  share. Every bridge computes the same answer from the same two lists (in any order); removing
  a bridge moves its lines and, through the bound, a few others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["LineQueue", "assign", "line_queues", "preferred_bridge", "topic_of"]


@dataclass(frozen=True, slots=True)
class LineQueue:
    site: str
    line: str
    queue: str
    binding_keys: tuple[str, ...]
    preferred: bool  # this bridge registers on it first (the others join as standby)

    @property
    def name(self) -> str:
        return f"{self.site}/{self.line}"


def _key(topic_filter: str) -> str:
    """An MQTT topic filter as the plugin's routing key pattern (``/`` → ``.``, ``+`` → ``*``)."""
    return ".".join("*" if level == "+" else level for level in topic_filter.split("/"))


def topic_of(routing_key: str) -> str:
    """The MQTT topic of a routing key the MQTT plugin made (a ``.`` inside a level: ``/``)."""
    return routing_key.replace(".", "/")


def _score(bridge: str, line: str) -> bytes:
    return hashlib.sha256(f"{bridge}/{line}".encode()).digest()


def assign(lines: list[str], bridges: list[str]) -> dict[str, str]:
    """Line (``{site}/{line}``) -> the bridge that prefers it: rendezvous hashing with bounded
    loads (module text); the same whatever the order of either list."""
    if not bridges:
        raise ValueError("no bridges to choose from")
    cap = -(-len(set(lines)) // len(set(bridges)))
    load = dict.fromkeys(bridges, 0)
    out: dict[str, str] = {}
    for line in sorted(set(lines)):
        ranked = sorted(set(bridges), key=lambda b: (_score(b, line), b), reverse=True)
        chosen = next(b for b in ranked if load[b] < cap)
        load[chosen] += 1
        out[line] = chosen
    return out


def preferred_bridge(line: str, bridges: list[str], lines: list[str]) -> str:
    """The bridge that prefers ``line`` among ``lines`` (:func:`assign`)."""
    return assign(lines, bridges)[line]


def line_queues(
    lines: list[str],
    *,
    prefix: str,
    enterprise: str,
    queue_prefix: str,
    node: str,
    bridges: list[str],
) -> list[LineQueue]:
    """The queues of ``lines`` (``{site}/{line}`` each) for bridge ``node``; with no
    ``bridges`` listed it is alone and prefers every line."""
    out = []
    owner = assign(lines, bridges) if bridges else {}
    for spec in lines:
        site, line = spec.split("/", 1)
        root = f"{prefix}/{enterprise}/{site}/{line}"
        out.append(
            LineQueue(
                site,
                line,
                f"{queue_prefix}.{enterprise}.{site}.{line}",
                (_key(f"{root}/event/#"), _key(f"{root}/alarm/#")),
                preferred=not bridges or owner[spec] == node,
            )
        )
    return out
