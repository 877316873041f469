"""Queues, bindings and the spreading rule of bridge.source: amqp (gateway/bridge/amqp_lines.py),
and the config rules of bridge.amqp (gateway/bridge/config.py, gateway/config/cleartext.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.bridge.amqp_lines import line_queues, preferred_bridge, topic_of
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
    for line in lines:
        assert sum(v[line] for v in views) == 1
        assert views[bridges.index(preferred_bridge(line, bridges))][line]
    # order of the list does not matter; the load is spread (60 lines: none has fewer than 10)
    assert all(preferred_bridge(ln, bridges) == preferred_bridge(ln, bridges[::-1]) for ln in lines)
    share = Counter(preferred_bridge(ln, bridges) for ln in lines)
    assert min(share.values()) >= 10, share


def test_removing_a_bridge_moves_only_its_lines() -> None:
    lines = [f"daiyue/L{i}" for i in range(100)]
    before = {ln: preferred_bridge(ln, ["bA", "bB", "bC"]) for ln in lines}
    after = {ln: preferred_bridge(ln, ["bA", "bB"]) for ln in lines}
    moved = {ln for ln in lines if before[ln] != after[ln]}
    assert moved == {ln for ln in lines if before[ln] == "bC"}


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
