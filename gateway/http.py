"""``saltgw run --http HOST:PORT``: ``/healthz`` and Prometheus ``/metrics``.

Metrics are collected at scrape time from the counters the gateway keeps anyway (journal,
broker link, supervisors): nothing is added to the event hot path.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from gateway.supervisor import State

if TYPE_CHECKING:
    from gateway.runtime import Gateway

__all__ = ["HttpServer", "health"]

log = logging.getLogger(__name__)


def health(gw: Gateway) -> tuple[bool, list[str]]:
    """Ready when the broker link is up and every device is online; else the reasons."""
    reasons: list[str] = []
    if not gw.started:
        reasons.append("gateway starting")
    if not gw.link.connected.is_set():
        why = gw.link.stats.last_error or "not connected yet"
        reasons.append(f"MQTT broker {gw.link.broker}: {why}")
    if not gw.journal.alive():
        reasons.append("journal writer is not running")
    for sup in gw.supervisors:
        st = sup.state
        if st is None:
            reasons.append(f"device {sup.device}: connecting")
        elif st.state != State.ONLINE:
            reasons.append(f"device {sup.device}: {st.state} ({st.detail})")
    return not reasons, reasons


class GatewayCollector(Collector):
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    def collect(self) -> Iterator[Any]:
        gw = self.gw
        js, ls = gw.journal.stats, gw.link.stats
        yield CounterMetricFamily(
            "saltgw_events_accepted", "Events durably journaled (accepted).", value=js.accepted
        )
        yield CounterMetricFamily(
            "saltgw_events_delivered",
            "Journaled events acknowledged by the broker (PUBACK) and removed.",
            value=js.delivered,
        )
        yield CounterMetricFamily(
            "saltgw_mqtt_published", "Messages handed to the broker link.", value=ls.published
        )
        drops = CounterMetricFamily(
            "saltgw_events_dropped",
            "Events dropped, by reason and whether the drop was intentional (policy).",
            labels=["reason", "intentional"],
        )
        drops.add_metric(["journal_full_drop_oldest", "true"], js.dropped)
        yield drops
        yield CounterMetricFamily(
            "saltgw_journal_blocked",
            "Events that had to wait for room in a full journal (policy block).",
            value=js.blocked,
        )
        yield GaugeMetricFamily(
            "saltgw_journal_backlog", "Undelivered events on disk.", value=js.backlog
        )
        yield GaugeMetricFamily("saltgw_journal_last_seq", "Last seq allocated.", value=js.last_seq)
        yield GaugeMetricFamily(
            "saltgw_journal_oldest_age_seconds",
            "Age of the oldest undelivered event (0 when none).",
            value=_oldest_age(gw),
        )
        yield GaugeMetricFamily(
            "saltgw_mqtt_connected",
            "1 when connected to the broker.",
            value=1 if gw.link.connected.is_set() else 0,
        )
        yield CounterMetricFamily(
            "saltgw_mqtt_connects", "Successful broker connections.", value=ls.connects
        )
        yield CounterMetricFamily(
            "saltgw_mqtt_disconnects", "Broker connections lost.", value=ls.disconnects
        )
        states = GaugeMetricFamily(
            "saltgw_device_state",
            "1 for the current state of each device.",
            labels=["device", "state"],
        )
        reconnects = CounterMetricFamily(
            "saltgw_device_reconnects", "Reconnects per device.", labels=["device"]
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


def _oldest_age(gw: Gateway) -> float:
    try:
        reader = gw.journal.reader()
    except Exception:
        return 0.0
    try:
        oldest = reader.oldest()
    finally:
        reader.close()
    return max(0.0, time.time() - oldest[1]) if oldest else 0.0


class HttpServer:
    def __init__(self, gw: Gateway, host: str, port: int) -> None:
        registry = CollectorRegistry()
        registry.register(GatewayCollector(gw))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif self.path == "/healthz":
                    ok, reasons = health(gw)
                    body = json.dumps({"ready": ok, "reasons": reasons}).encode()
                    self._send(200 if ok else 503, "application/json", body)
                else:
                    self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("serving /healthz and /metrics on port %d", self.port)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
