"""The scale test of issue 20, runnable on one machine: an enterprise of ``--lines`` simulated
lines (each a gateway journal + forwarder with broker failover, publishing contract events of
whole batches over MQTT 3.1.1), a 3-node RabbitMQ cluster (Debian's rabbitmq-server with the
MQTT plugin, quorum queues), one PostgreSQL trace store (Debian's postgresql) and 1, 2 and 3
bridge processes sharing the lines' queues (``bridge.source: amqp``), their documents in one
outbox directory (the platform). tests/support/enterprise.py builds it;
tests/integration/test_enterprise.py runs a small one on every CI run.

    python bench/scale.py [--lines 20] [--bridges 1,2,3] [--rate 10] [--backlog-secs 15]
                          [--live-secs 30]

Each bridge count is one run on a fresh cluster and database:

1. the bridges start (declaring the lines' queues) and stop; the lines produce
   ``--rate`` events/s each for ``--backlog-secs``: a backlog waits in the queues;
2. the bridges start again: the *drain rate* is the events stored per second from the first
   to the moment the store caught up with what the lines had produced when they started
   (the bridges' capacity: the lines keep producing meanwhile);
3. the live phase, ``--live-secs``: a third of the way in, the RabbitMQ node line L01's
   gateway publishes to is killed (SIGKILL): *gateway failover* is the longest time any line
   on that node took to be accepted by another node; two thirds in (with 2 or more bridges),
   the bridge holding L01 is killed (SIGKILL, mid-batch): *bridge takeover* is the time until
   an event of its lines is stored by another bridge;
4. the lines stop (each ends its batch), every event is acknowledged by the cluster, stored,
   documented and uploaded; the verdict: every event of every line in the store exactly once,
   the store's hash chain intact, every bag in exactly one document of the outbox.

*Sustained end to end* is all events / (last stored − first produced) over the whole run.
One JSON line per bridge count (bench/report.py), the baseline being the 1-bridge run's drain
rate; the machine's 2 cores run the lines, the three broker nodes, PostgreSQL and the bridges,
so compare ratios, not absolute rates, with a bigger machine.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import emit, error_row, row
from tests.support.enterprise import Enterprise, wait_until
from tests.support.postgres import pg_bindir, running_postgres
from tests.support.rabbitmq import RabbitCluster, rabbitmq_missing


def one_run(tmp: Path, pg: Any, args: argparse.Namespace, n_bridges: int) -> dict[str, Any]:
    cluster = RabbitCluster(tmp / "rabbitmq", 3).start()
    ent = Enterprise(tmp, cluster, pg, n_lines=args.lines, n_bridges=n_bridges, rate=args.rate,
                     queue_prefix=f"scale{n_bridges}")  # fmt: skip
    out: dict[str, Any] = {"bridges": n_bridges, "lines": args.lines}
    try:
        ent.start_bridges()
        for b in ent.bridges:  # the queues stand; nobody consumes them now
            b.stop()
        t_start, wall_start = time.monotonic(), time.time()
        ent.start_lines()
        time.sleep(args.backlog_secs)
        backlog = ent.produced()
        t_bridges = time.monotonic()
        ent.start_bridges()
        caught_up = wait_until(lambda: ent.stored() >= backlog, 600, "the backlog stored", 0.2)
        first = ent._q("SELECT MIN(received) FROM events")[0][0]
        drained_at = time.time()
        out["backlog_events"] = backlog
        out["drain_events_per_s"] = round(ent.stored() / max(drained_at - first, 1e-3), 1)
        out["catch_up_secs"] = round(time.monotonic() - t_bridges, 2)
        del caught_up
        # live phase with a node and a bridge killed
        third = args.live_secs / 3
        time.sleep(third)
        line = ent.lines[0]
        node = line.link.rotation.in_use
        assert node is not None
        on_node = [ln for ln in ent.lines
                   if ln.link.rotation.in_use is not None
                   and ln.link.rotation.in_use.port == node.port]  # fmt: skip
        t_node = time.monotonic()
        ent.cluster.kill(next(n.index for n in ent.cluster.nodes if n.mqtt_port == node.port))
        wait_until(lambda: all(ln.link.rotation.in_use is not None
                               and ln.link.rotation.in_use.port != node.port
                               for ln in on_node), 60, "the lines on another node")  # fmt: skip
        out["gateway_failover_secs"] = round(
            max((ln.link.rotation.switched_at or t_node) - t_node for ln in on_node), 3
        )
        out["lines_failed_over"] = len(on_node)
        time.sleep(max(0.0, t_node + third - time.monotonic()))
        if n_bridges >= 2:
            victim = next(b for b in ent.bridges if b.name == ent.holder(line))
            its = [ln.gateway for ln in ent.lines if ent.holder(ln) == victim.name]
            kill_wall = time.time()
            victim.kill()
            wait_until(lambda: ent.last_stored(its, kill_wall) is not None, 60,
                       "the killed bridge's lines stored again")  # fmt: skip
            out["bridge_takeover_secs"] = round(
                (ent.last_stored(its, kill_wall) or kill_wall) - kill_wall, 3
            )
            out["lines_taken_over"] = len(its)
        time.sleep(max(0.0, t_start + args.backlog_secs + args.live_secs - time.monotonic()))
        ent.finish(timeout=600)
        last = ent._q("SELECT MAX(received) FROM events")[0][0]
        v = ent.verdict()
        out["events"] = v.produced
        out["offered_events_per_s"] = args.rate * args.lines
        out["sustained_events_per_s"] = round(v.produced / max(last - wall_start, 1e-3), 1)
        out["verdict"] = {**vars(v), "ok": v.ok}
        return out
    finally:
        ent.close()
        cluster.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=20)
    ap.add_argument("--bridges", default="1,2,3")
    ap.add_argument("--rate", type=float, default=10.0, help="events/s per line")
    ap.add_argument("--backlog-secs", type=float, default=15.0)
    ap.add_argument("--live-secs", type=float, default=30.0)
    args = ap.parse_args()
    # a SIGTERM ends the run through the finally blocks: nodes, bridges and PostgreSQL stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missing = rabbitmq_missing()
    bindir = pg_bindir()
    if missing is not None or bindir is None:
        emit(error_row("scale", missing or "PostgreSQL server binaries not found"))
        return 2
    baseline: float | None = None
    ok = True
    tmp = Path(tempfile.mkdtemp(prefix="saltgw-scale-"))
    try:
        with running_postgres(tmp / "pg", bindir) as pg:
            for k in (int(x) for x in args.bridges.split(",")):
                name = f"scale_{k}_bridges_drain"
                try:
                    got = one_run(tmp / f"run{k}", pg, args, k)
                except Exception as exc:  # one run's failure is its line; the others go on
                    emit(error_row(name, exc))
                    ok = False
                    continue
                value = got.pop("drain_events_per_s")
                baseline = value if baseline is None else baseline
                ok = ok and got["verdict"]["ok"]
                emit(row(name, value, "events/s", baseline, **got))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
