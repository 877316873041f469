"""``saltgw run --http HOST:PORT``: ``/healthz`` and Prometheus ``/metrics``; ``saltgw health
URL`` asks a running gateway's ``/healthz`` (a container's HEALTHCHECK).

The server (:mod:`gateway.httpd`) bounds its threads and connections and cuts idle clients;
who may see the reasons and the metrics is :class:`HttpServer`'s rule (a bearer token, else
loopback callers only; docs/security.md).

``/healthz`` answers 200 ``{"ready": true, "reasons": []}`` when the broker link is up, every
device is online and the bridge (if any) runs, is connected and subscribed; else 503 with one
reason per problem (e.g. ``bridge subscription to '…/event/#' refused by the broker: Not
authorized``); a device whose driver tells more about itself (``details()``: a camera's QR
decoder) adds ``"devices": {id: {...}}``. The metrics (:mod:`gateway.metrics`) are collected at
scrape time from the counters the gateway keeps anyway: nothing is added to the event hot path.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from gateway.httpd import BoundedHttpServer, Request, Response
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
    if gw.telemetry is not None:  # a stalled telemetry output (docs/events.md)
        reasons += gw.telemetry.problems()
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


def ask_health(url: str, timeout: float = 5.0, token: str | None = None) -> tuple[bool, list[str]]:
    """Ask a gateway's ``/healthz``: (ready, reasons); a gateway that cannot be asked is not
    ready, and the reason says why. With ``token`` the request is authorised, so the gateway
    gives its reasons; without it a gateway that has a token only says ready or not."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with opener.open(request, timeout=timeout) as r:
            body = r.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (OSError, ValueError) as exc:
        return False, [f"cannot ask {url}: {exc}"]
    try:
        answer = json.loads(body)
        ready = answer["ready"]
        if not isinstance(ready, bool):
            raise TypeError(ready)
        if "reasons" in answer:
            return ready, [str(r) for r in answer["reasons"]]
    except (ValueError, KeyError, TypeError):
        return False, [f"{url} did not answer like saltgw's /healthz: {body[:80]!r}"]
    hidden = [] if ready else ["reasons withheld: ask with the gateway's token (--token-file)"]
    return ready, hidden


class HttpServer:
    """``/healthz`` and ``/metrics`` of one gateway on a :class:`BoundedHttpServer`.

    Who sees what (docs/security.md, "/healthz and /metrics"):

    - ``/healthz``: anyone gets the status code and ``{"ready": bool}``; the reasons and the
      device details (they name the broker's host:port and devices' errors) only go to an
      *authorised* caller;
    - ``/metrics``: with a token configured, authorised callers only; without one, anyone
      who can reach it (a Prometheus on another host: give it the token);
    - authorised: with a token configured, a request with ``Authorization: Bearer TOKEN``;
      without one, a request from a loopback address (127.0.0.0/8, ::1).
    """

    def __init__(
        self,
        gw: Gateway,
        host: str,
        port: int,
        token: str | None = None,
        *,
        max_connections: int = 32,
        timeout: float = 5.0,
    ) -> None:
        from gateway.metrics import GatewayCollector  # not for `saltgw health`: it stays quick

        self.token = token
        registry = CollectorRegistry()
        registry.register(GatewayCollector(gw))
        registry.register(_HttpCollector(self))
        self._registry = registry
        self._gw = gw
        self.server = BoundedHttpServer(
            host, port, self._handle, max_connections=max_connections, timeout=timeout
        )
        self.host = self.server.address[0]

    @property
    def port(self) -> int:
        return self.server.address[1]

    def authorised(self, req: Request) -> bool:
        if self.token is None:
            return _is_loopback(req.peer)
        scheme, _, given = req.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def _handle(self, req: Request) -> Response:
        if req.path == "/healthz":
            ok, reasons = health(self._gw)
            answer: dict[str, Any] = {"ready": ok}
            if self.authorised(req):
                answer["reasons"] = reasons
                if devices := device_details(self._gw):
                    answer["devices"] = devices
            return Response(200 if ok else 503, "application/json", json.dumps(answer).encode())
        if req.path == "/metrics":
            if self.token is not None and not self.authorised(req):
                return _UNAUTHORISED
            return Response(200, CONTENT_TYPE_LATEST, generate_latest(self._registry))
        return Response(404, "text/plain", b"not found: try /healthz or /metrics\n")

    def start(self) -> None:
        self.server.start()
        if self.token is not None:
            access = "details and /metrics need the bearer token"
        elif _is_loopback(self.host):
            access = "loopback only"
        else:
            access = "/healthz details to loopback callers only"
            log.warning(
                "http: listening on %s without a token: anyone who can reach it reads /metrics "
                "and whether the line is ready; set SALTGW_HTTP_TOKEN or --http-token-file "
                "(docs/security.md)",
                self.host,
            )
        log.info("serving /healthz and /metrics on %s port %d (%s)", self.host, self.port, access)

    def stop(self) -> None:
        self.server.stop()


_UNAUTHORISED = Response(
    401,
    "text/plain",
    b"unauthorised: send Authorization: Bearer TOKEN\n",
    {"WWW-Authenticate": 'Bearer realm="saltgw"'},
)


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return address == "localhost"


class _HttpCollector(Collector):
    """``saltgw_http_connections_total{outcome}``: what became of the HTTP connections."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "saltgw_http_connections",
            "HTTP connections by outcome (evicted/refused: over the connection cap; timed_out: "
            "no complete request or answer not taken in time)",
            labels=["outcome"],
        )
        for outcome, n in self._server.server.counters.snapshot().items():
            family.add_metric([outcome], n)
        yield family
