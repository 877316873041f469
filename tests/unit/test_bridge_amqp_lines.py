"""Queues, bindings and the spreading rule of bridge.source: amqp (gateway/bridge/amqp_lines.py),
and the config rules of bridge.amqp (gateway/bridge/config.py, gateway/config/cleartext.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.bridge.amqp_lines import assign, line_queues, preferred_bridge, topic_of
from gateway.bridge.config import BridgeSection
from gateway.config.cleartext import cleartext_risks
from gateway.config.models import config_model


def queues(node: str, bridges: list[str], lines: list[str]) -> dict[str, bool]:
    qs = line_queues(lines, prefix="salt/v1", enterprise="8035", queue_prefix="saltgw.bridge",
                     node=node, bridges=bridges)  # fmt: skip
    return {q.name: q.preferred for q in qs}


def test_a_line_s_queue_and_bindings() -> None:
    (q,) = line_queues(["daiyue/L1"], prefix="salt/v1", enterprise="8035",
                       queue_prefix="saltgw.bridge", node="bA", bridges=[])  # fmt: skip
    assert q.queue == "saltgw.bridge.8035.daiyue.L1"
    assert q.binding_keys == ("salt.v1.8035.daiyue.L1.event.#", "salt.v1.8035.daiyue.L1.alarm.#")
    assert q.preferred  # alone: every line


def test_routing_keys_come_back_as_topics() -> None:
    assert (
        topic_of("salt.v1.8035.daiyue.L1.event.pack.bag") == "salt/v1/8035/daiyue/L1/event/pack/bag"
    )
    assert (
        topic_of("salt.v1.8035.daiyue.gateway.gw-1.seq") == "salt/v1/8035/daiyue/gateway/gw-1/seq"
    )


def test_every_line_has_exactly_one_preferring_bridge_whoever_asks() -> None:
    bridges = ["bA", "bB", "bC"]
    lines = [f"s{i // 10}/L{i}" for i in range(60)]
    views = [queues(b, bridges, lines) for b in bridges]
    owner = assign(lines, bridges)
    for line in lines:
        assert sum(v[line] for v in views) == 1
        assert views[bridges.index(owner[line])][line]
        assert preferred_bridge(line, bridges, lines) == owner[line]
    # the order of either list does not matter
    assert assign(lines[::-1], bridges[::-1]) == owner


@pytest.mark.parametrize("n_bridges", [2, 3, 4])
@pytest.mark.parametrize("n_lines", [4, 20, 21, 100])
def test_no_bridge_holds_more_than_its_share(n_bridges: int, n_lines: int) -> None:
    """Plain rendezvous hashing put 16 of these 20 lines on one of two bridges."""
    lines = [f"daiyue/L{i + 1:02d}" for i in range(n_lines)]
    bridges = [f"b{i + 1}" for i in range(n_bridges)]
    share = Counter(assign(lines, bridges).values())
    assert max(share.values()) == -(-n_lines // n_bridges)
    assert sum(share.values()) == n_lines


def test_removing_a_bridge_moves_its_lines_and_few_others() -> None:
    lines = [f"daiyue/L{i}" for i in range(99)]
    before = assign(lines, ["bA", "bB", "bC"])
    after = assign(lines, ["bA", "bB"])
    moved = {ln for ln in lines if before[ln] != after[ln]}
    assert {ln for ln in lines if before[ln] == "bC"} <= moved
    assert len(moved) <= 33 + 10  # bC's third, and a few through the bound


def amqp(**kw: Any) -> dict[str, Any]:
    return {"source": "amqp", "amqp": {"urls": ["amqp://127.0.0.1:5672"], "lines": ["s/L1"], **kw}}


@pytest.mark.parametrize(
    ("bridge", "error"),
    [
        ({"source": "amqp"}, "source 'amqp' needs an amqp: section"),
        ({"amqp": amqp()["amqp"]}, "amqp: is set but source is 'mqtt'"),
        ({**amqp(), "share_group": "g"}, "share_group is for source 'mqtt'"),
        (amqp(urls=["mqtt://h:1883"]), "expected amqp://host:port or amqps://host:port"),
        (amqp(urls=["amqp://u:p@h:5672"]), "give only scheme, host and port"),
        (amqp(urls=["amqps://a:5671", "amqp://b:5672"]), "mixes TLS (amqps://) and plain"),
        (amqp(urls=["amqp://a", "amqp://a:5672"]), "is the same node as endpoint 1"),
        (amqp(lines=["L1"]), "String should match pattern"),
        (amqp(lines=["s/L1", "s/L1"]), "listed twice: s/L1"),
    ],
)
def test_config_errors_name_the_fix(bridge: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as info:
        BridgeSection.model_validate(bridge)
    assert error in str(info.value)


def test_a_password_over_plain_amqp_to_another_host_is_refused_unless_allowed() -> None:
    def risks(**kw: Any) -> list[Any]:
        cfg = config_model().model_validate({
            "gateway": {"id": "gw", "enterprise": "8035", "site": "s", "line": "L1"},
            "bridge": amqp(**kw),
        })  # fmt: skip
        return list(cleartext_risks(cfg))

    (r,) = risks(urls=["amqp://rabbit-1:5672"], username="u")
    assert r.loc == ("bridge", "amqp", "urls", 0) and not r.allowed
    assert "AMQP password of user 'u'" in r.message and "use amqps://" in r.message
    (r,) = risks(urls=["amqp://rabbit-1:5672"], username="u", allow_cleartext_secrets=True)
    assert r.allowed
    assert not risks(urls=["amqps://rabbit-1:5671"], username="u")
    assert not risks(urls=["amqp://127.0.0.1:5672"], username="u")
