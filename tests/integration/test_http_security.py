"""Issue 15, /healthz and /metrics: bounded threads and connections, idle clients cut, loopback
unless asked otherwise, reasons and metrics only for an authorised caller (docs/security.md,
"Findings of issue 15"). A real gateway (not started: its devices are all "connecting") behind
the real server, asked over real sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import _host_port
from gateway.http import HttpServer, ask_health
from gateway.runtime import Gateway
from tests.support.net import free_port
from tests.support.procs import ROOT

TOKEN = "t0ken-for-the-test"


@pytest.fixture
def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gateway:
    from gateway.config.loader import load_config
    from tests.support.configs import demo_line_on_free_ports

    monkeypatch.chdir(tmp_path)  # the demo line's stores are relative: var/…
    gateway = Gateway(load_config(demo_line_on_free_ports(tmp_path)))
    gateway._build_supervisors()  # the devices as `saltgw run` builds them, none connected
    return gateway


def serve(gw: Gateway, token: str | None = None, **kw: float) -> Iterator[HttpServer]:
    server = HttpServer(gw, "127.0.0.1", 0, token, **kw)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(url: str, token: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_300_idle_connections_do_not_make_300_threads(gw: Gateway) -> None:
    """Old main: one thread per connection (ThreadingHTTPServer), 300 idle clients = 300
    threads held for ever. Now 1 + 4 threads whatever clients do, the oldest idle ones are
    evicted at the cap of 32, and a real request is still answered at once."""
    before = threading.active_count()
    for server in serve(gw, max_connections=32, timeout=2.0):
        idle = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            deadline = time.monotonic() + 10
            while sum(server.server.counters.snapshot()[k] for k in ("evicted", "refused")) < 268:
                assert time.monotonic() < deadline, server.server.counters.snapshot()
                time.sleep(0.05)
            assert server.server.open_connections() <= 32
            assert threading.active_count() - before <= 1 + 4
            t0 = time.monotonic()
            code, body = get(f"http://127.0.0.1:{server.port}/healthz")
            assert time.monotonic() - t0 < 1.0
            assert code == 503 and json.loads(body)["ready"] is False
            assert threading.active_count() - before <= 1 + 4
            # the idle ones are cut once their 2 s are up: nothing is held
            deadline = time.monotonic() + 10
            while server.server.open_connections() > 0:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            counts = server.server.counters.snapshot()
            assert counts["timed_out"] >= 1 and counts["answered"] == 1
            text = get(f"http://127.0.0.1:{server.port}/metrics")[1].decode()
            assert 'saltgw_http_connections_total{outcome="evicted"}' in text
        finally:
            for s in idle:
                s.close()
    assert threading.active_count() <= before


def test_a_slow_client_is_cut_after_the_timeout(gw: Gateway) -> None:
    """A client sending its request a byte at a time never gets past the deadline."""
    for server in serve(gw, timeout=1.0):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            t0 = time.monotonic()
            cut = False
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                try:
                    s.send(bytes([byte]))
                except OSError:
                    cut = True
                    break
                time.sleep(0.05)
                if time.monotonic() - t0 > 5:
                    break
            if not cut:
                s.settimeout(5)
                try:
                    assert s.recv(100) == b""  # closed without an answer
                except ConnectionResetError:
                    pass
            assert time.monotonic() - t0 < 4
        assert server.server.counters.snapshot()["timed_out"] == 1


def test_port_alone_listens_on_loopback_only(gw: Gateway) -> None:
    """Old main: ``--http :9108`` bound 0.0.0.0 (every interface)."""
    port = free_port()
    host, got = _host_port(f":{port}")
    assert (host, got) == ("127.0.0.1", port)
    assert _host_port(f"0.0.0.0:{port}") == ("0.0.0.0", port)  # every interface: explicit
    assert _host_port(f"[::1]:{port}") == ("::1", port)
    server = HttpServer(gw, host, port)
    server.start()
    try:
        assert server.server.address == ("127.0.0.1", port)
        other = _non_loopback_address()
        if other is not None:  # the machine's own address does not reach it
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=2).close()
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 503
    finally:
        server.stop()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, a route is chosen
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_reasons_and_metrics_need_the_token(gw: Gateway) -> None:
    """Old main: /healthz told anyone the broker's host:port and device errors, and /metrics
    needed nothing."""
    for server in serve(gw, token=TOKEN):
        base = f"http://127.0.0.1:{server.port}"
        code, body = get(f"{base}/healthz")
        assert code == 503 and json.loads(body) == {"ready": False}  # ready or not, nothing more
        code, body = get(f"{base}/healthz", token="wrong")
        assert code == 503 and json.loads(body) == {"ready": False}
        code, body = get(f"{base}/healthz", token=TOKEN)
        answer = json.loads(body)
        assert code == 503 and "gateway starting" in answer["reasons"]
        assert any("MQTT broker" in r for r in answer["reasons"]), answer
        assert get(f"{base}/metrics")[0] == 401
        assert get(f"{base}/metrics", token="wrong")[0] == 401
        code, body = get(f"{base}/metrics", token=TOKEN)
        assert code == 200 and b"saltgw_events_accepted" in body
        assert ask_health(f"{base}/healthz") == (
            False,
            ["reasons withheld: ask with the gateway's token (--token-file)"],
        )
        ok, reasons = ask_health(f"{base}/healthz", token=TOKEN)
        assert not ok and "gateway starting" in reasons


def test_without_a_token_only_loopback_callers_see_the_reasons(gw: Gateway) -> None:
    for server in serve(gw):
        body = json.loads(get(f"http://127.0.0.1:{server.port}/healthz")[1])
        assert "gateway starting" in body["reasons"]  # a loopback caller
    server = HttpServer(gw, "0.0.0.0", 0)  # every interface, no token
    server.start()
    try:
        other = _non_loopback_address()
        if other is None:
            pytest.skip("this machine has no non-loopback address to call from")
        body = json.loads(get(f"http://{other}:{server.port}/healthz")[1])
        assert body == {"ready": False}
        assert (
            "gateway starting"
            in json.loads(get(f"http://127.0.0.1:{server.port}/healthz")[1])["reasons"]
        )
    finally:
        server.stop()


def test_saltgw_health_sends_the_token_from_an_owner_only_file(gw: Gateway, tmp_path: Path) -> None:
    token_file = tmp_path / "http-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k != "SALTGW_HTTP_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)

    def health(*extra: str, env: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "health", url, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    for server in serve(gw, token=TOKEN):
        url = f"http://127.0.0.1:{server.port}/healthz"
        answer = health("--token-file", str(token_file))
        assert answer.returncode == 1 and "gateway starting" in answer.stdout
        answer = health(env={**env, "SALTGW_HTTP_TOKEN": TOKEN})
        assert answer.returncode == 1 and "gateway starting" in answer.stdout
        answer = health()
        assert answer.returncode == 1 and "reasons withheld" in answer.stdout
        token_file.chmod(0o644)  # a token others can read is refused
        answer = health("--token-file", str(token_file))
        assert answer.returncode == 2 and "chmod 600" in answer.stderr
