"""Prometheus metrics of a running gateway (``saltgw run --http``, ``/metrics``).

Collected at scrape time from the counters the gateway keeps anyway (journal, broker link,
supervisors, the scan-KPI profiles' live counts, the bridge's threads): nothing is added to the
event hot path. The bridge's outbox is read on a connection of the scrape's own
(:mod:`gateway.bridge.backlog`). The list of metrics, with their meaning, is in
docs/architecture.md ("Monitoring").

Every way an event can be lost or left out is one ``reason`` of ``saltgw_events_dropped_total``,
with ``intentional="true"`` when a policy chose it (and the data is known to be redundant or
the operator asked for it), ``"false"`` when it is a fault to look into.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.bridge.backlog import read_backlog
from gateway.failover import BrokerRotation
from gateway.kpi.counters import METRICS as SCAN_METRICS
from gateway.profiles.scan_kpi import ScanKpiProfile
from gateway.supervisor import State

if TYPE_CHECKING:
    from gateway.runtime import Gateway

__all__ = ["GatewayCollector"]

Metric = CounterMetricFamily | GaugeMetricFamily


class GatewayCollector(Collector):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Metric]:
        yield from _journal(self.gw)
        yield _drops(self.gw)
        yield from _broker(self.gw)
        yield from _devices(self.gw)
        yield from _scanning(self.gw)
        if self.gw.telemetry is not None:
            yield from _telemetry(self.gw.telemetry)
        if self.gw.bridge is not None:
            yield from _bridge(self.gw.bridge)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _journal(gw: Gateway) -> Iterator[Metric]:
    js = gw.journal.stats
    yield _counter("saltgw_events_accepted", "Events durably journaled (accepted).", js.accepted)
    yield _counter(
        "saltgw_events_delivered",
        "Journaled events acknowledged by the broker (PUBACK) and removed.",
        js.delivered,
    )
    yield _counter(
        "saltgw_journal_blocked",
        "Events that had to wait for room in a full journal (policy block).",
        js.blocked,
    )
    yield _counter(
        "saltgw_journal_write_errors",
        "Journal commits that failed (disk full, I/O error): nothing in them was accepted; "
        "retried until the disk takes writes again.",
        js.write_errors,
    )
    yield _gauge("saltgw_journal_backlog", "Undelivered events on disk.", js.backlog)
    yield _gauge("saltgw_journal_last_seq", "Last seq allocated.", js.last_seq)
    yield _gauge(
        "saltgw_journal_oldest_age_seconds",
        "Age of the oldest undelivered event (0 when none).",
        _oldest_age(gw),
    )


def _oldest_age(gw: Gateway) -> float:
    if not gw.journal.alive():  # not open (yet, or any more): nothing to read, nor to create
        return 0.0
    try:
        reader = gw.journal.reader()
        try:
            oldest = reader.oldest()
        finally:
            reader.close()
    except sqlite3.Error:  # closing right now
        return 0.0
    return max(0.0, time.time() - oldest[1]) if oldest else 0.0


def _drops(gw: Gateway) -> CounterMetricFamily:
    drops = CounterMetricFamily(
        "saltgw_events_dropped",
        "Events dropped or left out, by reason and whether the drop was intentional (policy).",
        labels=["reason", "intentional"],
    )
    drops.add_metric(["journal_full_drop_oldest", "true"], gw.journal.stats.dropped)
    drops.add_metric(["profile_error", "false"], gw.profile_failures)
    bridge = gw.bridge
    consumer = bridge.consumer if bridge is not None else None
    if consumer is not None:
        st = consumer.store.stats
        drops.add_metric(["bridge_duplicate_id", "true"], st.duplicates)
        drops.add_metric(["bridge_code_commissioned_twice", "true"], st.conflicts)
        drops.add_metric(["bridge_invalid_payload", "false"], st.quarantined)
    return drops


def _broker(gw: Gateway) -> Iterator[Metric]:
    ls = gw.link.stats
    yield _counter("saltgw_mqtt_published", "Messages handed to the broker link.", ls.published)
    yield _gauge(
        "saltgw_mqtt_connected",
        "1 when connected to the broker.",
        1 if gw.link.connected.is_set() else 0,
    )
    yield _counter("saltgw_mqtt_connects", "Successful broker connections.", ls.connects)
    yield _counter(
        "saltgw_mqtt_reconnects",
        "Successful broker connections after the first one.",
        max(0, ls.connects - 1),
    )
    yield _counter("saltgw_mqtt_disconnects", "Broker connections lost.", ls.disconnects)
    yield _counter(
        "saltgw_mqtt_connect_failures",
        "Connection attempts that failed (unreachable, refused).",
        ls.connect_failures,
    )
    refused = CounterMetricFamily(
        "saltgw_mqtt_publish_refused",
        "PUBACKs in which the broker refused a message (MQTT 5 reason code >= 0x80, e.g. "
        "not_authorized by its ACL), by reason; a refused event stays in the journal and is "
        "sent again (gateway/refusals.py).",
        labels=["reason"],
    )
    for reason, n in sorted(dict(ls.refused).items()):  # a copy: the forwarder adds reasons
        refused.add_metric([reason], n)
    yield refused
    yield _gauge(
        "saltgw_mqtt_refused_waiting",
        "Events the broker refused that are not yet accepted: in the journal, sent again "
        "with backoff.",
        gw.forwarder.refused_waiting,
    )
    yield from _endpoints("saltgw_mqtt", "gateway's", gw.link.rotation)


def _endpoints(prefix: str, whose: str, rot: BrokerRotation) -> Iterator[Metric]:
    """Which broker endpoint (mqtt.urls) a session is on, and how often it switched."""
    in_use = GaugeMetricFamily(
        f"{prefix}_broker_in_use",
        f"1 for the broker endpoint the {whose} session is on, 0 for the others (mqtt.urls; "
        "all 0 while disconnected).",
        labels=["endpoint", "broker"],
    )
    current = rot.in_use
    for ep in rot.endpoints:
        in_use.add_metric([str(ep.index + 1), ep.name], 1 if ep == current else 0)
    yield in_use
    yield _counter(
        f"{prefix}_broker_switches",
        f"Times the {whose} session moved to another broker endpoint (failover).",
        rot.switches,
    )


def _devices(gw: Gateway) -> Iterator[Metric]:
    states = GaugeMetricFamily(
        "saltgw_device_state",
        "1 for the current state of each device.",
        labels=["device", "state"],
    )
    reconnects = CounterMetricFamily(
        "saltgw_device_reconnects",
        "Times a device came back online after losing its connection.",
        labels=["device"],
    )
    readings = CounterMetricFamily(
        "saltgw_device_readings", "Readings per device.", labels=["device"]
    )
    for sup in gw.supervisors:
        current = sup.state.state if sup.state else None
        for st in State:
            states.add_metric([sup.device, str(st)], 1 if st == current else 0)
        reconnects.add_metric([sup.device], sup.stats.reconnects)
        readings.add_metric([sup.device], sup.stats.readings)
    yield states
    yield reconnects
    yield readings


def _scanning(gw: Gateway) -> Iterator[Metric]:
    """The scan-KPI profiles' live figures (in memory; the per-shift and per-batch KPIs are
    on the retained ``…/kpi`` topic)."""
    rate = GaugeMetricFamily(
        "saltgw_scan_rate",
        "Codes commissioned / bags produced over the live window (absent while unknown).",
        labels=["device", "window_seconds"],
    )
    counts = CounterMetricFamily(
        "saltgw_scan_counts",
        "Scanning and packing counts since start (produced, read, noread, valid, ...).",
        labels=["metric"],
    )
    seen: set[int] = set()
    for profs in gw.profiles.values():
        for prof in profs:
            if not isinstance(prof, ScanKpiProfile):
                continue
            try:
                calc = prof.calc
            except RuntimeError:  # not bound to its line (yet)
                continue
            w = calc.window()
            if w["scan_rate"] is not None:
                rate.add_metric([prof.device, f"{calc.window_secs:g}"], w["scan_rate"])
            live = calc.counters.live
            if id(live) not in seen:  # the line's profiles share one set of counters
                seen.add(id(live))
                for m in SCAN_METRICS:
                    counts.add_metric([m], live.get(m, 0))
    yield rate
    if seen:
        yield counts


def _telemetry(t: Any) -> Iterator[Metric]:
    """Tag telemetry (docs/events.md): its store and outputs. Records folded or dropped by
    the store's full/age policy are intentional; store failures are faults."""
    st = t.store.stats
    yield _counter(
        "saltgw_telemetry_records_appended",
        "Telemetry records (one device's reported tags of one read) handed to the store.",
        st.appended,
    )
    yield _counter(
        "saltgw_telemetry_records_delivered",
        "Telemetry records every output delivered (broker PUBACK), removed from the store.",
        st.delivered,
    )
    yield _gauge(
        "saltgw_telemetry_backlog",
        "Telemetry records not yet delivered by every output (stored or about to be).",
        t.store.backlog,
    )
    removed = CounterMetricFamily(
        "saltgw_telemetry_records_removed",
        "Telemetry records removed undelivered, by reason; all intentional (the store's "
        "when_full policy or a stalled disk), the latest value of each tag kept when coalesced.",
        labels=["reason", "intentional"],
    )
    removed.add_metric(["coalesced", "true"], st.coalesced)
    removed.add_metric(["dropped_oldest", "true"], st.dropped)
    removed.add_metric(["overflow_coalesced", "true"], st.overflow_coalesced)
    yield removed
    yield _counter(
        "saltgw_telemetry_store_failures",
        "Telemetry store commits that failed (disk full, I/O error), retried.",
        st.failures,
    )
    yield _counter(
        "saltgw_telemetry_failures",
        "Readings or device states telemetry failed on (logged; the events are unaffected).",
        t.failures,
    )
    up = GaugeMetricFamily(
        "saltgw_telemetry_output_up", "1 when a telemetry output's thread runs.", labels=["output"]
    )
    for o in t.outputs:
        up.add_metric([o.name], 1 if o.alive() else 0)
    yield up


def _bridge(bridge: Any) -> Iterator[Metric]:
    """The bridge to the platform (docs/bridge.md): ingest, documents, upload, outbox."""
    yield _gauge("saltgw_bridge_up", "1 when every bridge thread runs.", 1 if bridge.alive() else 0)
    restarts = CounterMetricFamily(
        "saltgw_bridge_thread_restarts",
        "Bridge threads started again after an error (logged with its traceback).",
        labels=["thread"],
    )
    for name, n in sorted(bridge.restarts.items()):
        restarts.add_metric([name], n)
    yield restarts
    yield from _endpoints("saltgw_bridge", "bridge's", bridge.rotation)
    c = bridge.consumer
    if c is not None:
        yield _gauge(
            "saltgw_bridge_connected",
            "1 when the bridge's consumer is connected to the broker.",
            1 if c.connected.is_set() else 0,
        )
        yield _counter(
            "saltgw_bridge_messages_received",
            "Messages the bridge received and committed (repeats and bad ones included).",
            c.received,
        )
        yield _counter(
            "saltgw_bridge_events_ingested",
            "Events stored in the trace store (de-duplicated by id).",
            c.store.stats.accepted,
        )
        quarantined = CounterMetricFamily(
            "saltgw_bridge_quarantined_messages",
            "Messages the bridge kept in quarantine instead of storing them, by reason "
            "(docs/bridge.md).",
            labels=["reason"],
        )
        for kind, n in sorted(c.store.stats.by_kind.items()):
            quarantined.add_metric([kind], n)
        yield quarantined
    yield _counter(
        "saltgw_bridge_documents_built",
        "Documents built into the outbox (schema-checked; failures quarantined).",
        bridge.documents_built,
    )
    u = bridge.uploader
    if u is not None:
        yield _counter(
            "saltgw_bridge_documents_uploaded",
            "Documents acknowledged by the platform (or written, for an outbox directory).",
            u.stats.acked,
        )
        attempts = CounterMetricFamily(
            "saltgw_bridge_upload_retries",
            "Upload attempts to retry: failed (counted towards max_attempts) or unavailable.",
            labels=["outcome"],
        )
        attempts.add_metric(["failed"], u.stats.failed)
        attempts.add_metric(["unavailable"], u.stats.unavailable)
        yield attempts
        yield _counter(
            "saltgw_bridge_documents_quarantined_on_upload",
            "Documents quarantined by the upload (rejected, or max_attempts failed).",
            u.stats.quarantined,
        )
    yield from _snapshot(getattr(bridge, "public_stats", None))
    backlog = read_backlog(bridge.bcfg.store)
    if backlog is None:
        return
    docs = GaugeMetricFamily(
        "saltgw_bridge_documents", "Documents in the outbox by state.", labels=["state"]
    )
    for state, n in sorted(backlog.documents.items()):
        docs.add_metric([state], n)
    yield docs
    yield _gauge(
        "saltgw_bridge_upload_backlog",
        "Documents not yet acknowledged (pending or sent).",
        backlog.unacked,
    )
    yield _gauge(
        "saltgw_bridge_upload_oldest_age_seconds",
        "Age of the oldest document not yet acknowledged (0 when none).",
        backlog.oldest_unacked_secs,
    )
    yield _gauge(
        "saltgw_bridge_documents_unchecked",
        "Documents in the outbox built without a schema check (bridge.epcis_check: off).",
        backlog.unchecked,
    )
    yield _gauge(
        "saltgw_bridge_events_waiting",
        "Uploadable events in the trace store not yet in a document.",
        backlog.events_waiting,
    )


def _snapshot(stats: Any) -> Iterator[Metric]:
    """The public snapshot the resolver reads (docs/bridge.md, "Public snapshot")."""
    if stats is None:
        return
    yield _gauge("saltgw_bridge_snapshot_codes", "Codes in the last published public snapshot.",
                 stats.codes)  # fmt: skip
    age = 0.0 if stats.published_at is None else max(0.0, time.time() - stats.published_at)
    yield _gauge(
        "saltgw_bridge_snapshot_age_seconds",
        "Seconds since the public snapshot was last published (0 before the first).",
        age,
    )
    yield _counter("saltgw_bridge_snapshot_publishes", "Public snapshots published.",
                   stats.publishes)  # fmt: skip
    yield _counter(
        "saltgw_bridge_snapshot_failures",
        "Rounds of the public snapshot writer that failed (logged; tried again with backoff).",
        stats.failures,
    )
