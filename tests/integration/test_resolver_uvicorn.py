"""The resolver's HTTP servers over real sockets on 127.0.0.1: what a public server must do
whatever the app does (gateway/resolver/uvserver.py's constraints). Silent and slowloris
connections closed within the timeout, oversized heads refused with 4xx, keep-alive, many
connections, a bounded connection count, a dripped body cut off, and a stop that ends idle
connections; waitress, the fallback, answers the same routes with the same headers."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.resolver.app import SECURITY_HEADERS
from gateway.resolver.config import RateLimitSection, ResolverSection
from gateway.resolver.server import ResolverServer
from tests.support.snapshot import code_row, write_snapshot

GOOD = "8035K7Q2M9X4TZ"
TIMEOUT = 1  # channel_timeout_secs in these tests
INTERNALS = (b"Traceback", b'File "', b"uvicorn", b"waitress", b"httptools", b".py")


def _server(tmp: Path, server: str = "uvicorn", **cfg: Any) -> ResolverServer:
    write_snapshot(tmp / "snap.db", codes=[code_row(GOOD)])
    section = ResolverSection(
        snapshot=tmp / "snap.db",
        query_log=tmp / "q.db",
        listen="127.0.0.1:0",
        server=server,  # type: ignore[arg-type]
        channel_timeout_secs=TIMEOUT,
        rate_limit=RateLimitSection(per_second=10_000, burst=10_000),
        **cfg,
    )
    srv = ResolverServer(section)
    srv.start()
    return srv


@pytest.fixture
def uv(tmp_path: Path) -> Iterator[ResolverServer]:
    srv = _server(tmp_path)
    assert srv.kind == "uvicorn"
    try:
        yield srv
    finally:
        srv.stop()


def _closed_within(sock: socket.socket, secs: float) -> tuple[bool, bytes]:
    """(True when the server closed ``sock`` within ``secs``, what it sent before)."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def _get(port: int, path: str = f"/q/{GOOD}") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_a_silent_connection_is_closed_within_the_timeout(uv: ResolverServer) -> None:
    with socket.create_connection(("127.0.0.1", uv.port)) as s:
        t0 = time.monotonic()
        closed, got = _closed_within(s, TIMEOUT + 4)
        assert closed and got == b""
        assert time.monotonic() - t0 >= TIMEOUT - 0.2  # not at once: after the timeout


def test_slowloris_half_a_request_line_is_closed(uv: ResolverServer) -> None:
    with socket.create_connection(("127.0.0.1", uv.port)) as s:
        s.sendall(b"GET /q/8035")
        t0 = time.monotonic()
        deadline = t0 + TIMEOUT + 4
        closed = False
        while time.monotonic() < deadline and not closed:  # drip a byte every 0.2 s
            try:
                s.sendall(b"K")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = _closed_within(s, 0.2)[0]
        assert closed, "a dripped request line kept its connection"
        assert time.monotonic() - t0 < TIMEOUT + 4


def test_slow_headers_after_a_first_answer_are_closed_too(uv: ResolverServer) -> None:
    with socket.create_connection(("127.0.0.1", uv.port)) as s:
        s.sendall(f"GET /q/{GOOD} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.settimeout(5)
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        s.sendall(b"GET /q/8035K7Q2 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed, got = _closed_within(s, TIMEOUT + 4)
        assert closed and got == b""


def test_keep_alive_answers_many_requests_on_one_connection(uv: ResolverServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", uv.port, timeout=10)
    try:
        conn.connect()
        first = conn.sock
        for path in (f"/q/{GOOD}", f"/api/v1/codes/{GOOD}", "/static/resolver.css", "/"):
            conn.request("GET", path)
            r = conn.getresponse()
            assert r.status == 200 and r.read() and not r.will_close
        assert conn.sock is first  # the same socket all along
        closed, _ = _closed_within(conn.sock, TIMEOUT + 4)  # then idle: closed
        assert closed
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_oversized_request_line_and_headers_get_4xx(tmp_path: Path, server: str) -> None:
    srv = _server(tmp_path, server)
    try:
        for head in (
            f"GET /q/{'A' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 20_000 + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(3000)),
        ):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(head)
                closed, got = _closed_within(s, 8)
            status = int(got.split(b" ")[1])
            assert 400 <= status < 500, got[:200]
            assert closed
            for word in INTERNALS:
                assert word not in got.split(b"\r\n\r\n", 1)[1], got
    finally:
        srv.stop()


def test_an_unfinished_huge_head_is_refused_before_it_ends(uv: ResolverServer) -> None:
    with socket.create_connection(("127.0.0.1", uv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40_000)  # no end in sight
        closed, got = _closed_within(s, TIMEOUT + 4)
    assert closed and got.startswith(b"HTTP/1.1 431 "), got[:200]
    headers = got.split(b"\r\n\r\n")[0].decode().lower()
    for name, value in SECURITY_HEADERS:
        assert f"{name.lower()}: {value.lower()}" in headers


def test_many_silent_connections_do_not_lock_clients_out(tmp_path: Path) -> None:
    srv = _server(tmp_path, connection_limit=50)
    idle: list[socket.socket] = []
    try:
        for _ in range(120):
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        t0 = time.monotonic()
        status, _h, body = _get(srv.port)
        assert status == 200 and b"genuine" in body
        assert time.monotonic() - t0 < TIMEOUT  # answered before any timeout closed the rest
        time.sleep(0.3)
        still_open = 0
        for s in idle:
            s.settimeout(0.01)
            try:
                still_open += s.recv(1) != b""
            except TimeoutError:
                still_open += 1
            except ConnectionResetError:
                pass
        assert still_open <= 50, still_open  # the oldest waiting ones were closed
    finally:
        for s in idle:
            s.close()
        srv.stop()


def test_a_dripped_body_is_cut_off_with_408(uv: ResolverServer) -> None:
    with socket.create_connection(("127.0.0.1", uv.port), timeout=10) as s:
        s.sendall(
            b"POST /complaint HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nplace="
        )
        closed, got = _closed_within(s, TIMEOUT + 4)
    assert closed and got.startswith(b"HTTP/1.1 408 "), got[:200]


def test_stop_closes_idle_connections_and_the_port(tmp_path: Path) -> None:
    srv = _server(tmp_path)
    port = srv.port
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    keep.request("GET", f"/q/{GOOD}")
    assert keep.getresponse().read()
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 5
        assert keep.sock is not None
        assert _closed_within(keep.sock, 2)[0] and _closed_within(silent, 2)[0]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        keep.close()
        silent.close()


@pytest.mark.parametrize("server", ["uvicorn", "waitress"])
def test_both_servers_answer_alike(tmp_path: Path, server: str) -> None:
    srv = _server(tmp_path, server)
    try:
        assert srv.kind == server
        for path, status in ((f"/q/{GOOD}", 200), ("/q/8035NOTHERE1", 404), ("/q/%ff", 400)):
            got, headers, body = _get(srv.port, path)
            assert got == status
            for name, value in SECURITY_HEADERS:
                assert headers[name.lower()] == value
            assert headers["server"] == "saltgw-resolver"
            assert headers["content-length"] == str(len(body))
    finally:
        srv.stop()
