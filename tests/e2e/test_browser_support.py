"""The browser and HTTPS-proxy test support, proven on a page of our own: Debian's headless
Chromium at a phone-sized viewport loads a form, submits it and leaves a screenshot; the same
page through nginx running docker/nginx-resolver.conf over TLS, with the test CA trusted
the way a person adds a root (and refused without it), and with http.client."""

from __future__ import annotations

import http.client
import ssl
import struct
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import browser as browser_support
from tests.support import nginx as nginx_support
from tests.support.browser import PHONE, chromium, renders_chinese, require_cjk_font, wait_for
from tests.support.certs import Pki, make_pki
from tests.support.nginx import RESOLVER_CONF, Nginx, render_template
from tests.support.pgroup import members

pytestmark = pytest.mark.e2e

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>食盐追溯查询</title>
<style>body{font-family:sans-serif;margin:0;padding:16px;background:#f4f7fb}
h1{font-size:22px;color:#0b4f8a} input{width:100%;font-size:18px;padding:8px;box-sizing:border-box}
button{margin-top:12px;width:100%;font-size:18px;padding:10px;background:#0b4f8a;color:#fff}</style>
</head><body>
<h1 id="title">食盐追溯查询</h1>
<p>视口宽度 <span id="width"></span> px</p>
<form method="post" action="/submit"><label for="code">追溯码</label>
<input id="code" name="code" autocomplete="off"><button id="go" type="submit">查询</button></form>
<script>document.getElementById("width").textContent = String(window.innerWidth);</script>
</body></html>"""

RESULT = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>结果</title></head>
<body><p id="result">{code}</p></body></html>"""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]] = field(default_factory=dict)


class Backend:
    """A tiny HTTP server on a free loopback port that records every request it answers."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: str) -> None:
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                seen.append(Seen("GET", self.path, dict(self.headers.items())))
                self._answer(PAGE)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                seen.append(Seen("POST", self.path, dict(self.headers.items()), form))
                code = form.get("code", [""])[0]
                self._answer(RESULT.format(code=code.replace("<", "&lt;")))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Backend:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


@pytest.fixture
def backend() -> Iterator[Backend]:
    with Backend() as b:
        yield b


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def submit_code(driver: Any, code: str) -> str:
    """Type ``code`` into the form, submit it, return the result page's text."""
    from selenium.webdriver.common.by import By

    field_ = wait_for(driver, lambda d: d.find_element(By.ID, "code"))
    field_.send_keys(code)
    driver.find_element(By.ID, "go").click()
    result = wait_for(driver, lambda d: d.find_elements(By.ID, "result"))
    return str(result[0].text)


def test_phone_page_form_and_screenshot(
    browser: Any, screenshot: Callable[..., Path], backend: Backend
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"http://127.0.0.1:{backend.port}/")
    title = wait_for(browser, lambda d: d.find_element(By.ID, "title"))
    assert title.text == "食盐追溯查询"
    # the page laid out at the phone's width, and the server saw a phone
    assert browser.find_element(By.ID, "width").text == str(PHONE.width)
    assert "Mobile" in backend.seen[0].headers["User-Agent"]

    page = screenshot(browser, "form")
    assert page == browser_support.ARTIFACTS / "screenshots" / (
        "test_phone_page_form_and_screenshot-form.png"
    )
    assert png_size(page) == PHONE.screenshot_size

    assert submit_code(browser, "6901234567892A01") == "6901234567892A01"
    assert [p.form for p in backend.posts()] == [{"code": ["6901234567892A01"]}]
    assert png_size(screenshot(browser)) == PHONE.screenshot_size


def test_chinese_text_is_drawn_not_boxes(browser: Any, backend: Backend) -> None:
    """The pages are in Chinese: the machine needs a font with its glyphs, or every
    screenshot shows boxes (scripts/setup.sh installs fonts-wqy-microhei)."""
    require_cjk_font()
    browser.get(f"http://127.0.0.1:{backend.port}/")
    wait_for(browser, lambda d: d.title == "食盐追溯查询")
    assert renders_chinese(browser)
    assert renders_chinese(browser, "A", "B")  # the check itself: two glyphs differ
    assert not renders_chinese(browser, "食", "食")


def test_https_through_nginx_with_the_test_ca_trusted(
    tmp_path: Path,
    pki: Pki,
    backend: Backend,
    https_proxy: Callable[[Pki, int], Nginx],
    screenshot: Callable[..., Path],
) -> None:
    from selenium.webdriver.common.by import By

    proxy = https_proxy(pki, backend.port)
    with chromium(tmp_path / "browser", trust=pki.ca) as driver:
        driver.get(f"{proxy.url}/")
        assert wait_for(driver, lambda d: d.find_element(By.ID, "title")).text == "食盐追溯查询"
        assert driver.current_url == f"{proxy.url}/"
        assert png_size(screenshot(driver, "https")) == PHONE.screenshot_size
        assert submit_code(driver, "扫码 A-1") == "扫码 A-1"

        # a printed http:// address lands on the https:// page
        driver.get(f"{proxy.http_url}/q/6901234567892A01")
        wait_for(driver, lambda d: d.current_url.startswith("https://"))
        assert driver.current_url == f"{proxy.url}/q/6901234567892A01"

    (post,) = backend.posts()
    assert post.form == {"code": ["扫码 A-1"]}
    assert post.headers["X-Forwarded-Proto"] == "https"
    assert post.headers["X-Forwarded-For"] == "127.0.0.1"
    assert post.headers["Host"] == urllib.parse.urlsplit(proxy.url).netloc  # localhost:PORT
    assert "/q/6901234567892A01" in [s.path for s in backend.seen]


def test_https_refused_without_the_test_ca(
    tmp_path: Path, pki: Pki, backend: Backend, https_proxy: Callable[[Pki, int], Nginx]
) -> None:
    """The trust store is what lets the page through: a browser without the test CA gets
    Chromium's certificate error and the backend sees nothing."""
    proxy = https_proxy(pki, backend.port)
    with chromium(tmp_path / "browser") as driver:
        driver.get(f"{proxy.url}/")
        assert "ERR_CERT_AUTHORITY_INVALID" in driver.page_source
    assert backend.seen == []


def test_https_with_http_client(
    pki: Pki, backend: Backend, https_proxy: Callable[[Pki, int], Nginx]
) -> None:
    proxy = https_proxy(pki, backend.port)
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    conn = http.client.HTTPSConnection("localhost", proxy.https_port, context=ctx, timeout=10)
    try:
        # a client's own X-Forwarded-For is not passed on: the edge sets the address it saw
        conn.request("GET", "/q/abc", headers={"X-Forwarded-For": "203.0.113.9"})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200
        assert "食盐追溯查询" in body
        assert resp.getheader("Strict-Transport-Security") == "max-age=63072000"
        assert resp.getheader("Server") == "nginx"  # server_tokens off: no version

        # the request size limit answers before the backend sees anything
        conn.request("POST", "/submit", body=b"code=" + b"x" * 20_000)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 413
    finally:
        conn.close()
    (get,) = backend.seen
    assert (get.method, get.path) == ("GET", "/q/abc")
    assert get.headers["X-Forwarded-For"] == "127.0.0.1"
    assert get.headers["X-Forwarded-Proto"] == "https"
    assert get.headers["X-Forwarded-Host"] == urllib.parse.urlsplit(proxy.url).netloc

    # another CA's trust store refuses the proxy's certificate
    other = ssl.create_default_context(cafile=str(pki.other_ca))
    bad = http.client.HTTPSConnection("localhost", proxy.https_port, context=other, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        bad.request("GET", "/")
    bad.close()

    # plain HTTP is redirected, not proxied
    plain = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=10)
    plain.request("GET", "/q/abc?x=1", headers={"Host": "localhost"})
    resp = plain.getresponse()
    resp.read()
    plain.close()
    assert resp.status == 301
    assert resp.getheader("Location") == f"{proxy.url}/q/abc?x=1"
    assert len(backend.seen) == 1


def test_rate_limit_first_line_of_defence(
    pki: Pki, backend: Backend, https_proxy: Callable[[Pki, int], Nginx]
) -> None:
    """20 requests/s per address with a burst of 40: the first 41 pass whatever the timing;
    200 in a row (that would take 8 s to be all let through) meet 429s."""
    proxy = https_proxy(pki, backend.port)
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    conn = http.client.HTTPSConnection("localhost", proxy.https_port, context=ctx, timeout=10)
    statuses = []
    try:
        for _ in range(200):
            conn.request("GET", "/")
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
    finally:
        conn.close()
    assert statuses[:41] == [200] * 41
    assert set(statuses) == {200, 429}
    assert len(backend.seen) == statuses.count(200)


def test_every_chromium_process_is_gone_after_the_browser(tmp_path: Path) -> None:
    with chromium(tmp_path / "browser") as driver:
        group = driver.service.process.pid
        driver.get("about:blank")
        started = members(group)
        # chromedriver, the browser and its helpers, all in the one group
        assert len(started) >= 3, started
    assert members(group) == []


def test_nginx_stops_with_its_workers(tmp_path: Path, pki: Pki, backend: Backend) -> None:
    nginx_support.require_nginx()
    proxy = Nginx(tmp_path / "nginx", pki, backend.port)
    proxy.start()
    assert proxy.proc is not None
    group = proxy.proc.pid
    assert len(members(group)) >= 2  # the master and a worker
    proxy.stop()
    assert members(group) == []
    assert "gracefully shutting down" in proxy.error_log.read_text()


def test_the_template_is_the_documented_config() -> None:
    """The envsubst line in the file's header names every placeholder it has, no more."""
    text = RESOLVER_CONF.read_text()
    header = "".join(line for line in text.splitlines() if line.startswith("#"))
    listed = set(header.split("envsubst '", 1)[1].split("'", 1)[0].replace("#", "").split())
    in_file = {f"${{{n}}}" for n in nginx_support._PLACEHOLDER.findall(text)}
    assert listed == in_file
    values = {n[2:-1]: "x" for n in in_file}
    with pytest.raises(KeyError, match="no value for RESOLVER_BACKEND"):
        render_template(text, {k: v for k, v in values.items() if k != "RESOLVER_BACKEND"})
    with pytest.raises(KeyError, match="no placeholder RESOLVER_TYPO"):
        render_template(text, {**values, "RESOLVER_TYPO": "x"})
    rendered = render_template(text, values)
    assert not nginx_support._PLACEHOLDER.search(rendered)
    assert "$host" in rendered and "$request_uri" in rendered  # nginx's own are kept


@pytest.mark.parametrize("ci", ["", "true"])
def test_missing_browser_skips_locally_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str
) -> None:
    monkeypatch.setattr(browser_support, "CHROMEDRIVER", str(tmp_path / "no-chromedriver"))
    monkeypatch.setattr(nginx_support, "NGINX", str(tmp_path / "no-nginx"))
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="no-chromedriver"):
        browser_support.require_browser()
    with pytest.raises(outcome, match="no-nginx"):
        nginx_support.require_nginx()
