"""``saltgw run --http HOST:PORT``: ``/healthz`` and Prometheus ``/metrics``; ``saltgw health
URL`` asks a running gateway's ``/healthz`` (a container's HEALTHCHECK).

``/healthz`` answers 200 ``{"ready": true, "reasons": []}`` when the broker link is up, every
device is online and the bridge (if any) runs, is connected and subscribed; else 503 with one
reason per problem (e.g. ``bridge subscription to '…/event/#' refused by the broker: Not
authorized``); a device whose driver tells more about itself (``details()``: a camera's QR
decoder) adds ``"devices": {id: {...}}``. The metrics (:mod:`gateway.metrics`) are collected at
scrape time from the counters the gateway keeps anyway: nothing is added to the event hot path.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from gateway.supervisor import State

if TYPE_CHECKING:
    from gateway.runtime import Gateway

__all__ = ["HttpServer", "ask_health", "device_details", "health"]

log = logging.getLogger(__name__)


def health(gw: Gateway) -> tuple[bool, list[str]]:
    """Ready when the broker link is up, every device is online and the bridge (if any) runs
    and is connected; else the reasons."""
    reasons: list[str] = []
    if not gw.started:
        reasons.append("gateway starting")
    if not gw.link.connected.is_set():
        why = gw.link.stats.last_error or "not connected yet"
        reasons.append(f"MQTT broker {gw.link.broker}: {why}")
    elif (stalled := gw.forwarder.stalled()) is not None:
        reasons.append(f"MQTT broker {gw.link.broker}: {stalled}")
    if not gw.journal.alive():
        reasons.append("journal writer is not running")
    elif (failing := gw.journal.failing) is not None:  # disk full: nothing is accepted now
        reasons.append(f"journal: {failing}")
    for sup in gw.supervisors:
        st = sup.state
        if st is None:
            reasons.append(f"device {sup.device}: connecting")
        elif st.state != State.ONLINE:
            reasons.append(f"device {sup.device}: {st.state} ({st.detail})")
    reasons += _bridge_health(gw.bridge)
    return not reasons, reasons


def device_details(gw: Gateway) -> dict[str, dict[str, str]]:
    """What drivers with a ``details()`` method say about themselves (a camera: its decoder)."""
    out: dict[str, dict[str, str]] = {}
    for sup in gw.supervisors:
        details = getattr(sup.driver, "details", None)
        if callable(details):
            out[sup.device] = details()
    return out


def _bridge_health(bridge: Any) -> list[str]:
    """The bridge's reasons: a thread stopped or restarting, the consumer not connected, a
    subscription the broker refused or not yet granted (the forwarder's gate stays closed then,
    ``Forwarder.gate``: events wait in the journal, and this says why)."""
    if bridge is None:
        return []
    return list(bridge.problems())


def ask_health(url: str, timeout: float = 5.0) -> tuple[bool, list[str]]:
    """Ask a gateway's ``/healthz``: (ready, reasons); a gateway that cannot be asked is not
    ready, and the reason says why."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(url, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (OSError, ValueError) as exc:
        return False, [f"cannot ask {url}: {exc}"]
    try:
        answer = json.loads(body)
        return bool(answer["ready"]), [str(r) for r in answer["reasons"]]
    except (ValueError, KeyError, TypeError):
        return False, [f"{url} did not answer like saltgw's /healthz: {body[:80]!r}"]


class HttpServer:
    def __init__(self, gw: Gateway, host: str, port: int) -> None:
        from gateway.metrics import GatewayCollector  # not for `saltgw health`: it stays quick

        registry = CollectorRegistry()
        registry.register(GatewayCollector(gw))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif self.path == "/healthz":
                    ok, reasons = health(gw)
                    answer: dict[str, Any] = {"ready": ok, "reasons": reasons}
                    if devices := device_details(gw):
                        answer["devices"] = devices
                    self._send(200 if ok else 503, "application/json", json.dumps(answer).encode())
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
