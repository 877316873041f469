"""``saltgw console`` stopped (SIGTERM, as the demo and systemd stop it) while a browser holds
its live event stream open: the stream ends and the process exits 0 without a traceback. Before,
waitress waited for the stream's thread, gave up, closed its sockets, and the stream's next
keep-alive wrote to a closed descriptor (``OSError: [Errno 9] Bad file descriptor`` in the log;
seen in CI under load, tests/e2e/test_console_demo.py)."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto
from tests.support.console import PASSWORDS, console_file, fill_store, make_users
from tests.support.procs import announced_url, saltgw, stop

pytestmark = pytest.mark.integration


def _sign_in(host: str, port: int) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    body = urllib.parse.urlencode({"name": "olga", "password": PASSWORDS["olga"]})
    conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    answer = conn.getresponse()
    answer.read()
    assert answer.status == 303, answer.status
    cookie = answer.getheader("Set-Cookie") or ""
    conn.close()
    return cookie.split(";", 1)[0]


def test_a_console_stopped_with_a_live_stream_open_exits_cleanly(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    data = fill_store(tmp_path / "bridge.db", bags=20)
    cfg = console_file(tmp_path, data.store, make_users(tmp_path / "users.json"), mosquitto.port)
    log = tmp_path / "console.log"
    proc = saltgw("console", str(cfg), log=log)
    try:
        url = urllib.parse.urlsplit(announced_url(log, proc, "console"))
        host, port = url.hostname or "127.0.0.1", int(url.port or 80)
        cookie = _sign_in(host, port)
        stream = socket.create_connection((host, port), timeout=10)
        stream.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n"
                       "Accept: text/event-stream\r\n\r\n".encode())  # fmt: skip
        got = b""
        while b"retry: 1000" not in got:  # the stream is open and served
            chunk = stream.recv(4096)
            assert chunk, got
            got += chunk
        started = time.monotonic()
        code = stop(proc)
        took = time.monotonic() - started
        rest = b""  # the stream was ended by the console, not cut by the test
        while chunk := stream.recv(4096):
            rest += chunk
        stream.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "Bad file descriptor" not in text, text[-3000:]
    assert "still running" not in text, text[-3000:]  # waitress did not give up on a thread
    assert took < 10, took
