"""An enterprise on this machine (issue 20): four lines publishing over MQTT to a real 3-node
RabbitMQ cluster with failover, two bridge processes sharing the lines' quorum queues
(``bridge.source: amqp``) and writing one PostgreSQL trace store, their documents in one
outbox (the platform). Mid-run a bridge is killed (SIGKILL, mid-batch: its lines are taken
over by the other) and then the RabbitMQ node a line's gateway publishes to (its gateway fails
over within 5 s). At the end every event of every line is in the store exactly once, the
store's chain verifies, and every bag is in exactly one uploaded document
(tests/support/enterprise.py; bench/scale.py runs the same at 20 lines)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.enterprise import Enterprise, wait_until
from tests.support.postgres import PgServer
from tests.support.rabbitmq import RabbitCluster, rabbitmq_missing

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(rabbitmq_missing() is not None, reason=str(rabbitmq_missing())),
]

FAILOVER_LIMIT_SECS = 5.0


@pytest.fixture
def enterprise(tmp_path: Path, pg_server: PgServer) -> Iterator[Enterprise]:
    cluster = RabbitCluster(tmp_path / "rabbitmq", 3).start()
    ent = Enterprise(tmp_path, cluster, pg_server, n_lines=4, n_bridges=2, rate=40)
    try:
        yield ent
    finally:
        ent.close()
        cluster.stop()


def test_a_killed_bridge_and_a_killed_node_lose_nothing_and_double_nothing(
    enterprise: Enterprise,
) -> None:
    ent = enterprise
    ent.start_bridges()
    ent.start_lines()
    wait_until(lambda: ent.stored() >= 400, 60, "400 events stored", 0.2)
    # the bridge that holds line L01 dies mid-batch; the other takes its lines over
    victim = next(b for b in ent.bridges if b.name == ent.holder(ent.lines[0]))
    its_lines = [ln.gateway for ln in ent.lines if ent.holder(ln) == victim.name]
    kill_wall = time.time()
    victim.kill()
    wait_until(lambda: ent.last_stored(its_lines, kill_wall) is not None, 30,
               "the killed bridge's lines stored again")  # fmt: skip
    takeover = (ent.last_stored(its_lines, kill_wall) or 0) - kill_wall
    # the node line L01's gateway publishes to dies; its gateway goes on on another node
    line = ent.lines[0]
    node = line.link.rotation.in_use
    assert node is not None
    before = line.journal.stats.delivered
    t_kill = time.monotonic()
    ent.cluster.kill(next(n.index for n in ent.cluster.nodes if n.mqtt_port == node.port))
    wait_until(lambda: line.link.rotation.switches >= 1 and line.link.stats.connects >= 2, 30,
               "L01's gateway on another node")  # fmt: skip
    switched = (line.link.rotation.switched_at or 0) - t_kill
    wait_until(lambda: line.journal.stats.delivered > before + 50, 30, "L01 delivering again")
    print(f"\nbridge takeover {takeover:.3f} s, gateway failover {switched:.3f} s")
    ent.finish()
    v = ent.verdict()
    assert v.ok, v
    assert v.bags > 0 and v.documents > 0
    assert 0 < switched <= FAILOVER_LIMIT_SECS
