"""Tag telemetry through a broker outage (issue 14): the broker is away for ``--outage-secs``
while a Modbus farm offers 10,000 dp/s and a checkweigher makes traceability events; afterwards
the backlog drains under the store's documented policy and no event is lost.

    python bench/telemetry_outage.py [--outage-secs 600] [--before-secs 20] [--size 10x100]
                                     [--max-records N] [--when-full coalesce|drop_oldest]
                                     [--events-per-min 300] [--drain-timeout S] [--keep]

Processes: one mosquitto (free port; persistence on, for the bench subscriber's session only),
``saltgw sim`` running the farm (firmware-sim/modbus_farm.py, D devices x T holding registers
changing every 100 ms) and the demo line's checkweigher simulator (mappings/demo-line.yaml,
``cw1-sim``, without its drop-outs and garbage, ``--events-per-min`` bags a minute), and
``saltgw run --http`` with

* the farm's tag map, every farm device ``telemetry: {tags: all}`` (bench/telemetry_rate.py's
  ``gateway_config``), journal on;
* top-level ``telemetry: {uns: true, store, max_records, when_full, max_age_secs}``;
  ``max_records`` defaults to half the records the outage produces (D x 10 a second), so the
  ``when_full`` policy (default ``coalesce``) has to act;
* the demo line's ``cw1`` device and its ``checkweigher`` profile: a ``ccp.net_content`` event
  per weighing and ``pack.reject`` for the underweight bags, through the journal.

A paho subscriber in this process (QoS 1, persistent session, reconnecting every second at
most) takes ``…/L1/event/#``, ``…/L1/alarm/#`` and ``…/L1/tags/+``. Timeline: every device and
an event seen (bounded), ``--before-secs`` of normal running, mosquitto stopped for
``--outage-secs``, started again on the same port, then the drain, bounded by
``--drain-timeout``. Every 0.5 s the bench scrapes the gateway's /metrics and /proc.

Measured (the JSON lines, bench/report.py):

* ``telemetry_outage_drain_secs``: seconds from the broker's return until both backlogs are
  drained: telemetry when ``saltgw_telemetry_backlog`` is back to its level before the outage
  (at least one second of records), events when the subscriber holds every seq up to the
  journal's ``saltgw_journal_last_seq`` at the return. With each drain time apart, when the
  first record and event came after the return (the reconnect backoff, ``mqtt.reconnect_*``),
  when the first record read after the return came (``telemetry_live_secs``), the backlogs
  at the return, records removed by the policy (``saltgw_telemetry_records_removed``, by
  reason, all intentional), peak RSS and CPU % (one core = 100) of the gateway in each phase,
  the telemetry store's file size (with its WAL), what the subscriber received;
* ``telemetry_outage_events_lost``: seqs missing between the first event received and the
  journal's last seq at the end (de-duplicated by event id; target 0), duplicates, and seqs
  that came with two different ids (must be 0 too).

A step that does not come up (a port, the first messages, the drain) ends in an error line
naming it, with the figures gathered so far.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml

from bench import procs
from bench.report import emit, error_row, row
from bench.telemetry_rate import GATEWAY, PERIOD_MS, PREFIX, gateway_config

__all__ = ["outage_config", "rows", "run_outage"]

OUTAGE_SECS = 600.0
BEFORE_SECS = 20.0
AFTER_SECS = 5.0  # sampled after the drain, to see the gateway settle
SAMPLE_SECS = 0.5
EVENTS_PER_MIN = 300.0
START_TIMEOUT = 90.0  # every device and a first event on MQTT
FINAL_TIMEOUT = 30.0  # the last events after the drain
BENCH_DRAIN = "telemetry_outage_drain_secs"
BENCH_LOST = "telemetry_outage_events_lost"
ROOT_TOPIC = f"{PREFIX['saltgw']}/{GATEWAY['enterprise']}/{GATEWAY['site']}/{GATEWAY['line']}"
RECORD_HEAD = re.compile(rb'^\{"id":(\d+),"ts":"([^"]+)"')


# -- the config ----------------------------------------------------------------------------------
def outage_config(
    ports: list[int],
    registers: int,
    cw_port: int,
    *,
    broker_port: int,
    workdir: Path,
    max_records: int,
    when_full: str = "coalesce",
    max_age_secs: float = 3600.0,
    events_per_min: float = EVENTS_PER_MIN,
) -> dict[str, Any]:
    """The farm config of bench/telemetry_rate.py with a bounded telemetry store, plus the demo
    line's checkweigher (device ``cw1``, its profile, its simulator on ``cw_port``)."""
    cfg = gateway_config(
        ports,
        registers,
        broker_port=broker_port,
        journal=str(workdir / "journal.db"),
        telemetry_section={
            "store": str(workdir / "telemetry.db"),
            "max_records": max_records,
            "max_age_secs": max_age_secs,
            "when_full": when_full,
        },
    )
    demo = yaml.safe_load((ROOT / "mappings" / "demo-line.yaml").read_text())
    cw = next(d for d in demo["devices"] if d["id"] == "cw1")
    cw = {**cw, "connection": {**cw["connection"], "port": cw_port}}
    cw.pop("telemetry", None)  # the tags on MQTT are the farm's only
    profile = next(p for p in demo["profiles"] if p["profile"] == "checkweigher")
    sim = next(s for s in demo["simulators"] if s["kind"] == "checkweigher")
    sim = {**sim, "port": cw_port, "rate_per_min": events_per_min, "garbage_ratio": 0.0}
    for key in ("dropout_every_s", "dropout_for_s"):
        sim.pop(key, None)
    cfg["devices"].append(cw)
    cfg["profiles"] = [profile]
    cfg["simulators"].append(sim)
    return cfg


# -- the subscriber ------------------------------------------------------------------------------
@dataclass
class Seen:
    """What the subscriber received: events by seq (with their ids), telemetry records by id."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: dict[int, str] = field(default_factory=dict)  # seq -> event id
    event_messages: int = 0
    event_duplicates: int = 0  # the same event (id) again: a re-send after the outage
    seq_conflicts: int = 0  # one seq with two different ids: never allowed
    records: set[int] = field(default_factory=set)
    record_messages: int = 0
    coalesced_messages: int = 0
    devices: set[str] = field(default_factory=set)
    live_after: float | None = None  # wall time: note the first record read at or after it
    live_at: float | None = None  # monotonic time that record arrived
    record_back_at: float | None = None  # monotonic: the first record after live_after was set
    event_back_at: float | None = None  # monotonic: the first event after live_after was set
    unparsable: int = 0

    def contiguous_upto(self, last: int) -> bool:
        """Every seq from the first received up to ``last`` is here."""
        with self.lock:
            if not self.events:
                return False
            first = min(self.events)
            return all(s in self.events for s in range(first, last + 1))


def _on_record(seen: Seen, topic: str, payload: bytes) -> None:
    m = RECORD_HEAD.match(payload)
    if m is None:
        with seen.lock:
            seen.unparsable += 1
        return
    rid, ts = int(m.group(1)), datetime.fromisoformat(m.group(2).decode()).timestamp()
    with seen.lock:
        seen.record_messages += 1
        seen.records.add(rid)
        seen.devices.add(topic.rsplit("/", 1)[-1])
        if b'"coalesced":' in payload:
            seen.coalesced_messages += 1
        if seen.live_after is not None:
            if seen.record_back_at is None:
                seen.record_back_at = time.monotonic()
            if seen.live_at is None and ts >= seen.live_after:
                seen.live_at = time.monotonic()


def _on_event(seen: Seen, payload: bytes) -> None:
    try:
        body = json.loads(payload)
        seq, eid = int(body["seq"]), str(body["id"])
    except (ValueError, KeyError, TypeError):
        with seen.lock:
            seen.unparsable += 1
        return
    with seen.lock:
        if seen.live_after is not None and seen.event_back_at is None:
            seen.event_back_at = time.monotonic()
        seen.event_messages += 1
        have = seen.events.get(seq)
        if have is None:
            seen.events[seq] = eid
        elif have == eid:
            seen.event_duplicates += 1
        else:
            seen.seq_conflicts += 1


def subscribe(port: int, seen: Seen) -> Any:
    """A paho client with a persistent session on the events and the per-device tag topics:
    what the gateway sends while it reconnects after the broker's return is queued for it."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    filters = [(f"{ROOT_TOPIC}/event/#", 1), (f"{ROOT_TOPIC}/alarm/#", 1),
               (f"{ROOT_TOPIC}/tags/+", 1)]  # fmt: skip

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if "/tags/" in msg.topic:
            _on_record(seen, msg.topic, msg.payload)
        else:
            _on_event(seen, msg.payload)

    ready = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-outage-{time.time_ns()}",
                         clean_session=False)  # fmt: skip
    client.reconnect_delay_set(min_delay=0.1, max_delay=1)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = lambda c, *_a: c.subscribe(filters)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not ready.wait(10):
        client.loop_stop()
        raise RuntimeError("bench subscriber: not subscribed within 10 s")
    return client


# -- the gateway's /metrics and /proc ------------------------------------------------------------
def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """/metrics as ``{sample name or name{label=value,…}: value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def removed_by_reason(m: dict[str, float]) -> dict[str, float]:
    head = "saltgw_telemetry_records_removed_total{"
    return {k[len(head) :].split("reason=")[1].split(",")[0].rstrip("}"): v
            for k, v in m.items() if k.startswith(head)}  # fmt: skip


@dataclass
class Sample:
    t: float  # monotonic
    phase: str
    rss_kb: int
    cpu_s: float
    store_bytes: int
    metrics: dict[str, float] | None  # None: /metrics did not answer in time


@dataclass
class Sampler:
    """Every ``SAMPLE_SECS``: the gateway's RSS and CPU time, its /metrics, the store's size."""

    pid: int
    url: str
    store: Path
    phase: str = "start"
    samples: list[Sample] = field(default_factory=list)
    scrape_failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def take(self) -> Sample:
        try:
            metrics: dict[str, float] | None = scrape(self.url)
        except OSError:
            metrics = None
            self.scrape_failures += 1
        size = sum(p.stat().st_size for p in (self.store, Path(f"{self.store}-wal")) if p.exists())
        s = Sample(time.monotonic(), self.phase, procs.status_kb(self.pid, "VmRSS"),
                   procs.proc_cpu_s(self.pid), size, metrics)  # fmt: skip
        with self.lock:
            self.samples.append(s)
        return s

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_SECS):
            try:
                self.take()
            except (FileNotFoundError, ProcessLookupError):
                return  # the gateway is gone: the main thread notices and says so

    def latest(self) -> dict[str, float]:
        """The newest /metrics that answered (scraped now when none did yet)."""
        with self.lock:
            for s in reversed(self.samples):
                if s.metrics is not None:
                    return s.metrics
        return scrape(self.url, timeout=10)

    def phase_figures(self, phase: str) -> dict[str, Any]:
        with self.lock:
            inside = [s for s in self.samples if s.phase == phase]
        if len(inside) < 2:
            return {"samples": len(inside)}
        secs = inside[-1].t - inside[0].t
        return {
            "secs": round(secs, 1),
            "rss_max_mb": round(max(s.rss_kb for s in inside) / 1024, 1),
            "cpu_percent": round(100 * (inside[-1].cpu_s - inside[0].cpu_s) / secs, 1),
            "store_max_mb": round(max(s.store_bytes for s in inside) / 2**20, 1),
        }


def _metric_max(samples: list[Sample], name: str, phase: str | None = None) -> float:
    vals = [
        s.metrics[name]
        for s in samples
        if s.metrics is not None and name in s.metrics and (phase is None or s.phase == phase)
    ]
    return max(vals, default=0.0)


# -- the run -------------------------------------------------------------------------------------
class StepFailed(RuntimeError):
    """A step of the scenario did not come up in time; the figures so far go with it."""


@dataclass
class Run:
    """One scenario's state, so that an error line can carry what was measured so far."""

    devices: int
    registers: int
    outage_secs: float
    figures: dict[str, Any] = field(default_factory=dict)


def _sleep_watching(secs: float, gw: Any, log: Path, what: str) -> None:
    end = time.monotonic() + secs
    while (left := end - time.monotonic()) > 0:
        if gw.poll() is not None:
            raise StepFailed(f"saltgw run exited ({gw.returncode}) {what}: "
                             f"{log.read_text(errors='replace')[-1200:]}")  # fmt: skip
        time.sleep(min(0.5, left))


def run_outage(
    run: Run,
    *,
    workdir: Path,
    before_secs: float,
    max_records: int,
    when_full: str,
    max_age_secs: float,
    events_per_min: float,
    drain_timeout: float,
) -> None:
    """The scenario; fills ``run.figures``, raises StepFailed (or another error) on failure."""
    from tests.support.broker import Mosquitto
    from tests.support.net import free_port

    d, t = run.devices, run.registers
    broker = Mosquitto(workdir / "mosquitto")
    broker.start()
    base = procs.free_port_run(d + 1)
    ports, cw_port = list(range(base, base + d)), base + d
    cfg = outage_config(ports, t, cw_port, broker_port=broker.port, workdir=workdir,
                        max_records=max_records, when_full=when_full,
                        max_age_secs=max_age_secs, events_per_min=events_per_min)  # fmt: skip
    cfg_path = workdir / "gateway.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    http = free_port()
    url = f"http://127.0.0.1:{http}/metrics"
    store = workdir / "telemetry.db"
    run.figures["config"] = {
        "max_records": max_records,
        "when_full": when_full,
        "max_age_secs": max_age_secs,
        "events_per_min": events_per_min,
    }
    started: list[Any] = []
    seen = Seen()
    sub = None
    sampler: Sampler | None = None
    try:
        farm = procs.start([sys.executable, "-m", "gateway", "sim", str(cfg_path)],
                           workdir / "sim.log", workdir)  # fmt: skip
        started.append(farm)
        procs.wait_ports([*ports, cw_port], farm, workdir / "sim.log")
        sub = subscribe(broker.port, seen)
        gw_log = workdir / "gateway.log"
        gw = procs.start([sys.executable, "-m", "gateway", "run", str(cfg_path), "--broker",
                          broker.url, "--http", f"127.0.0.1:{http}"], gw_log, workdir)  # fmt: skip
        started.insert(0, gw)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with seen.lock:
                n_dev, n_ev = len(seen.devices), len(seen.events)
            if n_dev >= d and n_ev > 0:
                break
            if time.monotonic() > deadline:
                raise StepFailed(f"within {START_TIMEOUT:.0f} s: {n_dev} of {d} devices on "
                                 f"…/tags/+, {n_ev} events (see {gw_log})")  # fmt: skip
            _sleep_watching(0.2, gw, gw_log, "while starting")
        sampler = Sampler(gw.pid, url, store)
        sampler.phase = "before"
        sampler.take()  # /metrics answers, or the error says so
        threading.Thread(target=sampler.run, name="bench-sampler", daemon=True).start()
        _sleep_watching(before_secs, gw, gw_log, "before the outage")
        pre = sampler.latest()

        # the outage
        sampler.phase = "outage"
        broker.stop()
        t_down = time.monotonic()
        _sleep_watching(run.outage_secs, gw, gw_log, "during the outage")
        at_return = sampler.take().metrics or sampler.latest()
        try:
            broker.start()
        except TimeoutError as exc:
            raise StepFailed(f"mosquitto did not come back on port {broker.port}: {exc}") from exc
        t_up, wall_up = time.monotonic(), time.time()
        with seen.lock:
            seen.live_after = wall_up
        sampler.phase = "drain"
        last_seq_up = int(at_return["saltgw_journal_last_seq"])
        records_per_s = d * 1000 / PERIOD_MS
        with sampler.lock:
            before = [s for s in sampler.samples if s.phase == "before"]
        steady = max(records_per_s, _metric_max(before, "saltgw_telemetry_backlog"))
        run.figures.update({
            "outage_measured_secs": round(t_up - t_down, 1),
            "telemetry_backlog_before_max": _metric_max(before, "saltgw_telemetry_backlog"),
            "telemetry_backlog_at_return": at_return["saltgw_telemetry_backlog"],
            "telemetry_drained_at_backlog": steady,
            "journal_backlog_at_return": at_return["saltgw_journal_backlog"],
            "journal_last_seq_at_return": last_seq_up,
        })  # fmt: skip

        # the drain
        tel_done: float | None = None
        ev_done: float | None = None
        deadline = t_up + drain_timeout
        while tel_done is None or ev_done is None:
            now = time.monotonic()
            if now > deadline:
                m = sampler.latest()
                raise StepFailed(
                    f"not drained {drain_timeout:.0f} s after the broker's return: telemetry "
                    f"{'done' if tel_done else 'backlog ' + str(m.get('saltgw_telemetry_backlog'))}"
                    f", events {'done' if ev_done else 'missing seqs up to ' + str(last_seq_up)}"
                    f" (journal backlog {m.get('saltgw_journal_backlog')})"
                )
            if tel_done is None:
                m = sampler.latest()
                with sampler.lock:
                    fresh = sampler.samples[-1].t >= t_up
                if fresh and m.get("saltgw_telemetry_backlog", steady + 1) <= steady:
                    tel_done = sampler.samples[-1].t - t_up
            if ev_done is None and seen.contiguous_upto(last_seq_up):
                ev_done = time.monotonic() - t_up
            _sleep_watching(0.1, gw, gw_log, "during the drain")
        sampler.phase = "after"
        _sleep_watching(AFTER_SECS, gw, gw_log, "after the drain")
        end = sampler.take().metrics or sampler.latest()
        with seen.lock:
            back = {k: None if at is None else round(at - t_up, 2) for k, at in (
                ("telemetry_first_after_return_secs", seen.record_back_at),
                ("events_first_after_return_secs", seen.event_back_at),
                ("telemetry_live_secs", seen.live_at))}  # fmt: skip
        with sampler.lock:
            drain_samples = [s for s in sampler.samples if s.phase == "drain"]
        delivered = [s.metrics["saltgw_telemetry_records_delivered_total"]
                     for s in drain_samples if s.metrics is not None]  # fmt: skip
        removed0, removed1 = removed_by_reason(pre), removed_by_reason(end)
        run.figures.update({
            "telemetry_drain_secs": round(tel_done, 2),
            "events_drain_secs": round(ev_done, 2),
            **back,
            "drain_records_per_s": round((delivered[-1] - delivered[0]) / tel_done, 1)
            if len(delivered) > 1 and tel_done > 0 else None,
            "journal_backlog_max": _metric_max(sampler.samples, "saltgw_journal_backlog"),
            "removed_by_policy": {k: v - removed0.get(k, 0.0) for k, v in removed1.items()},
            "removed_intentional": True,
            "telemetry_records_appended": end["saltgw_telemetry_records_appended_total"],
            "telemetry_records_delivered": end["saltgw_telemetry_records_delivered_total"],
            "telemetry_store_failures": end["saltgw_telemetry_store_failures_total"],
            "phases": {p: sampler.phase_figures(p) for p in ("before", "outage", "drain", "after")},
            "store_end_mb": round(sampler.samples[-1].store_bytes / 2**20, 1),
            "gateway_rss_hwm_mb": round(procs.status_kb(gw.pid, "VmHWM") / 1024, 1),
            "metrics_scrape_failures": sampler.scrape_failures,
        })  # fmt: skip

        # every event up to the journal's last seq now
        last = int(end["saltgw_journal_last_seq"])
        deadline = time.monotonic() + FINAL_TIMEOUT
        while not seen.contiguous_upto(last) and time.monotonic() < deadline:
            time.sleep(0.2)
        with seen.lock:
            first = min(seen.events)
            missing = [s for s in range(first, last + 1) if s not in seen.events]
            run.figures["events"] = {
                "first_seq": first,
                "last_seq": last,
                "received": len(seen.events),
                "messages": seen.event_messages,
                "duplicates": seen.event_duplicates,
                "seq_conflicts": seen.seq_conflicts,
                "lost": len(missing),
                "lost_seqs": missing[:20],
            }
            run.figures["records_received"] = {
                "unique": len(seen.records),
                "messages": seen.record_messages,
                "coalesced_messages": seen.coalesced_messages,
                "unparsable_messages": seen.unparsable,
            }
    finally:
        if sampler is not None:
            sampler.stopping.set()
        for proc in started:
            procs.stop(proc)
        if sub is not None:
            sub.loop_stop()
            sub.disconnect()
        broker.kill()


def rows(
    quick: bool = False,
    outage_secs: float | None = None,
    before_secs: float = BEFORE_SECS,
    size: tuple[int, int] = (10, 100),
    max_records: int | None = None,
    when_full: str = "coalesce",
    max_age_secs: float = 3600.0,
    events_per_min: float = EVENTS_PER_MIN,
    drain_timeout: float | None = None,
    keep: bool = False,
) -> list[dict[str, Any]]:
    """The two result lines (``--quick``: a 60 s outage instead of 600 s)."""
    outage = outage_secs if outage_secs is not None else (60.0 if quick else OUTAGE_SECS)
    d, t = size
    if max_records is None:
        max_records = max(1000, int(d * 1000 / PERIOD_MS * outage / 2))
    timeout = drain_timeout if drain_timeout is not None else max(120.0, 2 * outage)
    run = Run(d, t, outage)
    what = {
        "what": f"saltgw run, {d} Modbus devices x {t} registers every {PERIOD_MS} ms "
        f"({d * t * 1000 // PERIOD_MS} dp/s) + a checkweigher's events, the broker away "
        f"{outage:g} s, then drained",
        "outage_secs": outage,
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    error: str | None = None
    try:
        run_outage(run, workdir=workdir, before_secs=before_secs, max_records=max_records,
                   when_full=when_full, max_age_secs=max_age_secs,
                   events_per_min=events_per_min, drain_timeout=timeout)  # fmt: skip
    except Exception as exc:  # an error line with the figures so far, never a traceback only
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if keep:
            what["workdir"] = str(workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    f = run.figures
    events = f.pop("events", None)
    if error is not None or "telemetry_drain_secs" not in f:
        drain = {**error_row(BENCH_DRAIN, error or "no drain figure"), **what, **f}
    else:
        secs = max(f["telemetry_drain_secs"], f["events_drain_secs"])
        drain = row(BENCH_DRAIN, secs, "s", None, **what, **f)
    if events is None:
        lost = {**error_row(BENCH_LOST, error or "no event figures"), **what}
    else:
        lost = row(BENCH_LOST, events["lost"] + events["seq_conflicts"], "events", None,
                   target=0, higher_is_better=False, **what, **events)  # fmt: skip
        if error is not None:
            lost["error"] = error
    return [drain, lost]


def _size(text: str) -> tuple[int, int]:
    d, _, t = text.lower().partition("x")
    try:
        return int(d), int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DxT like 10x100, got {text!r}") from None


def main(on_row: Callable[[dict[str, Any]], None] = emit) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--outage-secs", type=float, default=OUTAGE_SECS, help="default 600")
    ap.add_argument("--before-secs", type=float, default=BEFORE_SECS,
                    help="normal running before the outage (default 20)")  # fmt: skip
    ap.add_argument("--size", type=_size, default=(10, 100), metavar="DxT", help="default 10x100")
    ap.add_argument("--max-records", type=int,
                    help="telemetry.max_records (default: half the outage's records)")  # fmt: skip
    ap.add_argument("--when-full", choices=["coalesce", "drop_oldest"], default="coalesce")
    ap.add_argument("--max-age-secs", type=float, default=3600.0, help="telemetry.max_age_secs")
    ap.add_argument("--events-per-min", type=float, default=EVENTS_PER_MIN,
                    help="checkweigher bags a minute (default 300)")  # fmt: skip
    ap.add_argument(
        "--drain-timeout", type=float, help="give up on the drain after S s (default: 2 x outage)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, stores)")
    args = ap.parse_args()
    got = rows(outage_secs=args.outage_secs, before_secs=args.before_secs, size=args.size,
               max_records=args.max_records, when_full=args.when_full,
               max_age_secs=args.max_age_secs, events_per_min=args.events_per_min,
               drain_timeout=args.drain_timeout, keep=args.keep)  # fmt: skip
    for r in got:
        on_row(r)
    return 0 if all("error" not in r and r.get("met", True) for r in got) else 1


if __name__ == "__main__":
    sys.exit(main())
