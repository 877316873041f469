"""The resolver over real HTTP: a waitress server on 127.0.0.1 (a free port), asked with
http.client: every route, bad input, the rate limit, a snapshot replaced while it runs, and the
security headers on every answer, errors included."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.resolver.app import SECURITY_HEADERS
from gateway.resolver.config import RateLimitSection, ResolverSection, SuspectCopySection
from gateway.resolver.ratelimit import RateLimiter
from gateway.resolver.server import ResolverServer
from tests.support.snapshot import BATCH, code_row, write_snapshot

GOOD, RECALLED, GONE, HELD = "8035K7Q2M9X4TZ", "8035RECALL0001", "8035GONE000001", "8035HOLD000001"
INTERNALS = ("Traceback", 'File "', "sqlite", "gateway/", ".py", "Exception", "waitress")


def _snapshot(path: Path, built_at: str = "2024-05-03T08:00:00+08:00", extra: int = 0) -> None:
    codes = [
        code_row(
            GOOD,
            wholesale_sales=[
                {"date": "2024-05-06", "party_type": "批发企业", "party": "某某批发公司"}
            ],
        ),
        code_row(RECALLED, state="recalled"),
        code_row(GONE, state="withdrawn"),
        code_row(HELD, batch="B-HELD"),
        *(code_row(f"8035NEW{i:07d}") for i in range(extra)),
    ]
    write_snapshot(
        path,
        batches=[BATCH, {**BATCH, "batch": "B-HELD", "inspection": None}],
        codes=codes,
        built_at=built_at,
    )


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, **kw)

    def json(self, path: str) -> tuple[int, dict[str, Any]]:
        status, headers, body = self.get(path)
        assert headers["content-type"].startswith("application/json")
        return status, json.loads(body)


def _server(tmp: Path, **cfg: Any) -> ResolverServer:
    section = ResolverSection(
        snapshot=tmp / "snap.db",
        query_log=tmp / "queries.db",
        listen="127.0.0.1:0",
        reload_secs=0.1,
        threads=4,
        **cfg,
    )
    server = ResolverServer(section)
    server.start()
    return server


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ResolverServer, Client]]:
    _snapshot(tmp_path / "snap.db")
    server = _server(
        tmp_path,
        suspect_copy=SuspectCopySection(max_queries=5, max_places=3),
        rate_limit=RateLimitSection(per_second=1000, burst=1000),
    )
    try:
        yield server, Client(server.port)
    finally:
        server.stop()


def _assert_secure(headers: dict[str, str], body: bytes) -> None:
    for name, value in SECURITY_HEADERS:
        assert headers[name.lower()] == value
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"]
    text = body.decode("utf-8", "replace")
    for word in INTERNALS:
        assert word not in text, (word, text[:300])


def _verdict(body: bytes) -> str:
    text = body.decode()
    start = text.index('data-verdict="') + len('data-verdict="')
    return text[start : text.index('"', start)]


def test_pages_for_each_verdict(served: tuple[ResolverServer, Client]) -> None:
    _, c = served
    status, headers, body = c.get(f"/q/{GOOD}")
    assert status == 200 and _verdict(body) == "genuine"
    _assert_secure(headers, body)
    assert headers["cache-control"] == "no-store"
    text = body.decode()
    assert '<html lang="zh-CN">' in text and 'name="viewport"' in text
    assert "http://" not in text.replace("http://www.example.cn", "")  # nothing external
    for no in (
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
    ):
        assert f'data-field="{no}"' in text
    assert "某某批发公司" in text and "合格，一级" in text
    assert c.get(f"/q/{RECALLED}")[0] == 200 and _verdict(c.get(f"/q/{RECALLED}")[2]) == "recalled"
    assert _verdict(c.get(f"/q/{GONE}")[2]) == "withdrawn"
    status, _h, body = c.get("/q/8035NOTHERE01")
    assert status == 404 and _verdict(body) == "unknown"
    assert "12315" in body.decode() and "0571-12345678" in body.decode()  # advice, phone
    held = c.get(f"/q/{HELD}")[2].decode()
    assert 'data-released="false"' in held and "尚未放行" in held
    assert "合格" not in held.split('data-field="23"')[1].split("</tr>")[0]


def test_scan_forms_typed_form_and_api(served: tuple[ResolverServer, Client]) -> None:
    server, c = served
    assert _verdict(c.get(f"/q?c={GOOD}")[2]) == "genuine"
    assert _verdict(c.get("/check?code=8035+k7q2-m9x4tz")[2]) == "genuine"  # typed, tidied
    status, index = c.get("/")[::2], c.get("/")[2].decode()
    assert status[0] == 200 and 'action="/check"' in index and 'name="code"' in index
    status, doc = c.json(f"/api/v1/codes/{GOOD}")
    assert status == 200 and doc["verdict"] == "genuine" and doc["code"] == GOOD
    assert doc["public"]["17"] == {"name": "产品的追溯编码", "value": GOOD}
    assert doc["public"]["1"]["value"] == "精制盐" and doc["queries"] == 3
    status, doc = c.json("/api/v1/codes/8035NOTHERE01")
    assert status == 404 and doc["verdict"] == "unknown" and doc["public"] == {}
    assert doc["reason"] == "not_found" and doc["code"] == "8035NOTHERE01"
    assert c.json(f"/api/v1/codes/{RECALLED}")[1]["verdict"] == "recalled"
    assert c.json(f"/api/v1/codes/{GOOD}")[1]["queries"] == 4
    server.query_log.close()  # written: the channels are on the records
    import sqlite3

    with sqlite3.connect(server.cfg.query_log) as db:
        rows = db.execute(
            "SELECT channel, place, count FROM queries WHERE code = ? ORDER BY id", (GOOD,)
        ).fetchall()
    assert rows == [
        ("scan", "127.0.0.0/24", 1),
        ("typed", "127.0.0.0/24", 2),
        ("api", "127.0.0.0/24", 3),
        ("api", "127.0.0.0/24", 4),
    ]


def test_suspect_copy_after_many_queries(served: tuple[ResolverServer, Client]) -> None:
    _s, c = served
    verdicts = [_verdict(c.get(f"/q/{GOOD}")[2]) for _ in range(6)]
    assert verdicts == ["genuine"] * 5 + ["suspect_copy"]
    page = c.get(f"/q/{GOOD}")[2].decode()
    assert "疑似仿冒" in page and 'data-count="7"' in page


def test_feedback_and_complaints(served: tuple[ResolverServer, Client]) -> None:
    server, c = served
    status, doc = c.json(f"/api/v1/codes/{GOOD}")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, headers, body = c.request(
        "POST", "/feedback", f"qid={doc['query_id']}&code={GOOD}&matches=no".encode(), form
    )
    assert status == 200 and "已收到反馈" in body.decode()
    _assert_secure(headers, body)
    status, _h, body = c.request(
        "POST",
        "/api/v1/feedback",
        json.dumps({"query_id": doc["query_id"], "matches": True}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201
    complaint = "code=8035K7Q2M9X4TZ&place=%E6%9F%90%E8%B6%85%E5%B8%82&content=%E7%BB%93%E5%9D%97"
    status, _h, body = c.request("POST", "/complaint", complaint.encode(), form)
    assert status == 200 and "投诉已提交" in body.decode()
    status, _h, body = c.request("POST", "/complaint", b"place=&content=", form)
    assert status == 400 and "请填写地点" in body.decode()
    status, _h, body = c.request(
        "POST",
        "/api/v1/complaints",
        json.dumps({"place": "某市", "content": "<script>x</script>", "contact": "138"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201 and len(json.loads(body)["id"]) == 22
    status, _h, body = c.request(
        "POST", "/complaint", complaint.encode(), {**form, "Origin": "http://evil.example"}
    )
    assert status == 403
    assert "<script>" not in c.get("/complaint?code=<script>")[2].decode()
    server.query_log.close()
    import sqlite3

    with sqlite3.connect(server.cfg.query_log) as db:
        assert db.execute("SELECT place, content FROM complaints ORDER BY id").fetchall() == [
            ("某超市", "结块"),
            ("某市", "<script>x</script>"),
        ]
        assert db.execute("SELECT matches FROM feedback ORDER BY id").fetchall() == [(0,), (1,)]


BAD_REQUESTS = [
    ("GET", "/q/" + "A" * 300, 400),
    ("GET", "/q/" + "8035" + "A" * 70, 400),
    ("GET", "/q/%00", 400),
    ("GET", "/q/8035%00ABCDEF", 400),
    ("GET", "/q/%E4%B8%AD%E6%96%87", 400),  # non-ASCII code
    ("GET", "/q/%ff%fe", 400),  # not UTF-8
    ("GET", "/q/..%2F..%2Fetc%2Fpasswd", 400),  # not a code
    ("GET", "/q/../../etc/passwd", 400),
    ("GET", "/static/../gateway/resolver/app.py", 404),
    ("GET", "/static/%2e%2e/app.py", 404),
    ("GET", "/q?c=%00", 400),
    ("GET", "/q?c=../x", 400),
    ("GET", "/q?" + "&".join(f"k{i}=v" for i in range(40)), 400),
    ("GET", "/check?code=", 400),
    ("GET", "/api/v1/codes/" + "9" * 100, 400),
    ("DELETE", f"/q/{GOOD}", 405),
    ("PUT", "/api/v1/complaints", 405),
    ("TRACE", "/", 405),
    ("OPTIONS", "/", 405),
    ("POST", "/q/8035K7Q2M9X4TZ", 405),
    ("GET", "/nothing-here", 404),
    ("GET", "/api/v1/feedback", 405),
]


@pytest.mark.parametrize(("method", "path", "status"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx(
    served: tuple[ResolverServer, Client], method: str, path: str, status: int
) -> None:
    _s, c = served
    got, headers, body = c.request(method, path)
    assert got == status, body[:300]
    _assert_secure(headers, body)
    if got == 405:
        assert headers["allow"]


def test_bodies_too_large_wrong_type_or_malformed(served: tuple[ResolverServer, Client]) -> None:
    _s, c = served
    huge = b"content=" + b"x" * 40_000
    got, headers, body = c.request(
        "POST", "/complaint", huge, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert got == 413
    _assert_secure(headers, body)
    got, headers, body = c.request(
        "POST", "/api/v1/complaints", b"{not json", {"Content-Type": "application/json"}
    )
    assert got == 400 and json.loads(body)["error"] == "Bad Request"
    got, _h, _b = c.request(
        "POST", "/api/v1/complaints", b"[]", {"Content-Type": "application/json"}
    )
    assert got == 400
    got, _h, _b = c.request("POST", "/api/v1/complaints", b"{}", {"Content-Type": "text/plain"})
    assert got == 415
    got, _h, _b = c.request(
        "POST",
        "/api/v1/feedback",
        b'{"query_id": "x", "matches": 1}',
        {"Content-Type": "application/json"},
    )
    assert got == 400
    deep = b"[" * 100_000 + b"]" * 100_000
    got, _h, body = c.request(
        "POST", "/api/v1/complaints", deep, {"Content-Type": "application/json"}
    )
    assert got in (400, 413) and b"Traceback" not in body


def test_huge_body_is_refused_without_reading_it(served: tuple[ResolverServer, Client]) -> None:
    _s, c = served
    with socket.create_connection(("127.0.0.1", c.port), timeout=10) as s:
        s.sendall(
            b"POST /complaint HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/x-www-form-urlencoded\r\nContent-Length: 10000000000\r\n\r\n"
        )
        reply = s.recv(4096)
    assert reply.split(b" ")[1] in (b"413", b"400")
    assert b"Traceback" not in reply


def test_head_and_static_and_health(served: tuple[ResolverServer, Client]) -> None:
    _, c = served
    status, headers, body = c.request("HEAD", f"/q/{GOOD}")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000
    status, headers, body = c.get("/static/resolver.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert "max-age" in headers["cache-control"]
    _assert_secure(headers, body)
    assert b"Disallow: /q" in c.get("/robots.txt")[2]
    status, doc = c.json("/healthz")
    assert status == 200 and doc["snapshot"]["codes"] == 4
    assert doc["snapshot"]["built_at"] == "2024-05-03T08:00:00+08:00"


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    _snapshot(tmp_path / "snap.db")
    section = ResolverSection(
        snapshot=tmp_path / "snap.db", query_log=tmp_path / "q.db", listen="127.0.0.1:0"
    )
    now = [1000.0]
    server = ResolverServer(section, limiter=RateLimiter(1, 3, 100, clock=lambda: now[0]))
    server.start()
    try:
        c = Client(server.port)
        assert [c.get(f"/q/{GOOD}")[0] for _ in range(3)] == [200, 200, 200]
        status, headers, body = c.get(f"/q/{GOOD}")
        assert status == 429 and headers["retry-after"] == "1"
        assert "查询过于频繁" in body.decode()
        _assert_secure(headers, body)
        status, headers, body = c.get("/api/v1/codes/" + GOOD)
        assert status == 429 and json.loads(body)["error"] == "Too Many Requests"
        assert c.get("/healthz")[0] == 200  # probes are not limited
        now[0] += 1.0
        assert c.get(f"/q/{GOOD}")[0] == 200
    finally:
        server.stop()


def test_trusted_proxy_forwarded_for_is_the_client(tmp_path: Path) -> None:
    _snapshot(tmp_path / "snap.db")
    server = _server(
        tmp_path,
        trusted_proxies=["127.0.0.1/32"],
        rate_limit=RateLimitSection(per_second=1, burst=2),
    )
    try:
        c = Client(server.port)
        for i in range(3):  # three clients behind the proxy: three buckets
            assert c.get(f"/q/{GOOD}", headers={"X-Forwarded-For": f"198.51.{i}.7"})[0] == 200
        server.query_log.close()
        import sqlite3

        with sqlite3.connect(server.cfg.query_log) as db:
            places = [r[0] for r in db.execute("SELECT place FROM queries ORDER BY id")]
        assert places == ["198.51.0.0/24", "198.51.1.0/24", "198.51.2.0/24"]
    finally:
        server.stop()


def test_no_snapshot_yet_then_one_published_then_replaced(tmp_path: Path) -> None:
    server = _server(tmp_path)
    try:
        c = Client(server.port)
        status, headers, body = c.get(f"/q/{GOOD}")
        assert status == 503 and "尚未发布" in body.decode()
        _assert_secure(headers, body)
        assert c.json("/healthz")[0] == 503
        _snapshot(tmp_path / "snap.db")
        deadline = time.monotonic() + 10
        while c.get(f"/q/{GOOD}")[0] != 200:
            assert time.monotonic() < deadline, "the published snapshot was not picked up"
            time.sleep(0.05)
        assert c.json("/api/v1/codes/8035NEW0000001")[0] == 404
        _snapshot(tmp_path / "snap.db", built_at="2024-05-04T08:00:00+08:00", extra=2)
        while c.json("/healthz")[1]["snapshot"]["codes"] != 6:
            assert time.monotonic() < deadline, "the replaced snapshot was not picked up"
            time.sleep(0.05)
        assert c.json("/api/v1/codes/8035NEW0000001")[0] == 200
        (tmp_path / "broken").write_bytes(b"garbage" * 1000)
        (tmp_path / "broken").replace(tmp_path / "snap.db")
        time.sleep(0.5)  # several reload checks: the broken file is not taken
        assert c.json("/api/v1/codes/8035NEW0000001")[0] == 200
        assert c.json("/healthz")[1]["snapshot"]["built_at"] == "2024-05-04T08:00:00+08:00"
    finally:
        server.stop()
