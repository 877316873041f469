"""The resolver in a real headless browser (issue 16): ``saltgw resolver`` run as a user runs it,
over a snapshot built with tests/support/snapshot.py, read by Debian's Chromium at a phone-sized
viewport (tests/support/browser.py).

Each page state a consumer meets (a genuine code with the table 6 fields, an unreleased batch,
an unknown code, a recalled, a withdrawn and a suspected-copy code), the typed-code form and the
feedback and complaint forms end to end (checked in the resolver's own CSV export), bad input
and a flood, and the page over HTTPS behind nginx (docker/nginx-resolver.conf). One resolver and
one browser serve the whole module; each test uses its own codes, so the tests do not depend on
their order. Screenshots: test-artifacts/screenshots/{test}-{label}.png.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    ARTIFACTS,
    PHONE,
    WAIT,
    chromium,
    renders_chinese,
    require_browser,
    require_cjk_font,
    wait_for,
)
from tests.support.nginx import Nginx, require_nginx
from tests.support.procs import ROOT, announced_url, saltgw, stop
from tests.support.snapshot import BATCH, ENTERPRISE, PRODUCT, code_row, write_snapshot

pytestmark = pytest.mark.e2e

# one code per test (a code's count and the copy rule see every query of it)
GOOD = "8035K7Q2M9X4TZ"
HELD = "8035HOLD000001"  # its batch has no released inspection yet
RECALLED = "8035RECALL0001"
GONE = "8035GONE000001"  # withdrawn
COPY = "8035COPY000001"  # queried often enough to be a suspected copy
TYPED = "8035TYPED00001"
FEEDBACK = "8035FEEDBACK01"
HTTPS = "8035HTTPS00001"
HTTPS_FORM = "8035HTTPSFORM1"  # a complaint posted through nginx
DIRECT = "8035DIRECT0001"
NOT_HERE = "8035NOTHERE01"  # the enterprise is here, the code is not

MAX_QUERIES = 3  # suspect_copy.max_queries: the 4th query of a code is a suspected copy
INTERNALS = ("Traceback", 'File "', "sqlite", "gateway/", ".py", "Exception", "waitress")

PRODUCER_SALES = [{"date": "2024-05-02", "party_type": "经销企业", "party": "某某盐业经销公司"}]
WHOLESALE_SALES = [
    {"date": "2024-05-06", "party_type": "批发企业", "party": "某某批发公司"},
    {"date": "2024-05-08", "party_type": "零售企业", "party": "某某超市"},
]

# QB/T 5279-2018 table 6, as the standard names the fields (not taken from the code under test)
TABLE6_NAMES = {
    1: "产品名称",
    2: "净含量",
    3: "产品标准编号",
    4: "产品的类别",
    5: "生产工艺",
    6: "生产日期",
    7: "保质期",
    8: "生产企业",
    9: "生产企业地址",
    10: "电话",
    11: "企业网址",
    12: "产地",
    13: "原料盐生产商及产地",
    14: "定点生产企业许可证编号",
    15: "定点生产企业许可证有效期",
    16: "产品批次",
    17: "产品的追溯编码",
    18: "食用方法",
    19: "温馨提示",
    20: "配料表及其含量",
    21: "贮存条件",
    22: "营养成分表",
    23: "产品检验结果及产品等级",
    24: "特殊人群适应性",
    25: "生产企业销售信息",
    26: "批发企业销售信息",
    27: "企业信用等级",
}
ITEM_ORDER = [17, 16, 6, 7, 23, 25, 26]  # the bag's fields, shown first (docs/resolver.md)
CATEGORY_ORDER = [n for n in TABLE6_NAMES if n not in ITEM_ORDER]


def _sales(entries: list[dict[str, str]]) -> str:
    return "\n".join(f"{e['date']} · {e['party_type']} · {e['party']}" for e in entries)


# the text each row of GOOD's page shows: the snapshot's values
GOOD_VALUES = {
    1: PRODUCT["name"],
    2: PRODUCT["net_content"],
    3: PRODUCT["standard"],
    4: PRODUCT["category"],
    5: PRODUCT["process"],
    6: "2024-05-01",
    7: BATCH["shelf_life"],
    8: ENTERPRISE["name"],
    9: ENTERPRISE["address"],
    10: ENTERPRISE["phone"],
    11: ENTERPRISE["website"],
    12: PRODUCT["origin"],
    13: PRODUCT["raw_salt_source"],
    14: ENTERPRISE["licence_no"],
    15: ENTERPRISE["licence_valid"],
    16: BATCH["batch"],
    17: GOOD,
    18: PRODUCT["usage"],
    19: PRODUCT["tips"],
    20: PRODUCT["ingredients"],
    21: PRODUCT["storage"],
    22: PRODUCT["nutrition"],
    23: BATCH["inspection"],
    24: PRODUCT["special_groups"],
    25: _sales(PRODUCER_SALES),
    26: _sales(WHOLESALE_SALES),
    27: ENTERPRISE["credit_rating"],
}


# -- the resolver ---------------------------------------------------------------------------------
@dataclass
class Resolver:
    url: str  # http://127.0.0.1:PORT/ as printed
    port: int
    config: Path
    workdir: Path

    def export(self, what: str) -> list[dict[str, str]]:
        """``saltgw resolver CONFIG --export WHAT --output F.csv`` (while it runs) -> rows."""
        out = self.workdir / f"{what}.csv"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [
                *(sys.executable, "-m", "gateway", "resolver", str(self.config)),
                *("--export", what, "--output", str(out)),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))

    def exported(
        self, what: str, match: Callable[[dict[str, str]], bool], timeout: float = 15
    ) -> dict[str, str]:
        """The exported row ``match`` picks, waiting for the resolver's writer (every 0.2 s)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.export(what)
            found = [r for r in rows if match(r)]
            if found:
                assert len(found) == 1, found
                return found[0]
            assert time.monotonic() < deadline, f"no such row in the {what} export: {rows}"
            time.sleep(0.2)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """A plain HTTP GET (urllib), as another client."""
        req = urllib.request.Request(self.url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def _snapshot(path: Path) -> None:
    codes = [
        code_row(GOOD, producer_sales=PRODUCER_SALES, wholesale_sales=WHOLESALE_SALES),
        code_row(HELD, batch="B-HELD"),
        code_row(RECALLED, state="recalled", state_date="2024-05-20"),
        code_row(GONE, state="withdrawn", state_date="2024-05-01"),
        *(code_row(c) for c in (COPY, TYPED, FEEDBACK, HTTPS, HTTPS_FORM, DIRECT)),
    ]
    write_snapshot(
        path,
        batches=[BATCH, {**BATCH, "batch": "B-HELD", "inspection": None}],
        codes=codes,
    )


def _resolver_url(log: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    return announced_url(log, proc, "resolver", timeout)


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resolver]:
    """``saltgw resolver`` as a subprocess: behind a proxy on 127.0.0.1 (trusted), a low
    suspect-copy threshold, a rate limit the browser's own pages stay well inside."""
    tmp = tmp_path_factory.mktemp("resolver")
    _snapshot(tmp / "snap.db")
    cfg = tmp / "resolver.yaml"
    cfg.write_text(
        "resolver:\n"
        f"  snapshot: {tmp / 'snap.db'}\n"
        f"  query_log: {tmp / 'queries.db'}\n"
        # a bucket that does not refill within the run (one token per 1,000 s): the flood's 429
        # then holds for the browser's next page whatever the machine's speed; every other
        # client of this module stays far inside the burst
        "  rate_limit: {per_second: 0.001, burst: 300}\n"
        "  trusted_proxies: [127.0.0.1/32]\n"
        f"  suspect_copy: {{max_queries: {MAX_QUERIES}, max_places: 50}}\n"
        '  hotline: "12315"\n'
        "  timezone: Asia/Shanghai\n"
    )
    log = tmp / "resolver.log"
    proc = saltgw("resolver", str(cfg), "--listen", "127.0.0.1:0", log=log)
    try:
        url = _resolver_url(log, proc)
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        yield Resolver(url, port, cfg, tmp)
    finally:
        assert stop(proc) == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text, text


@pytest.fixture(scope="module")
def phone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One phone-sized headless Chromium for the module."""
    require_browser()
    with chromium(tmp_path_factory.mktemp("browser")) as driver:
        driver.set_script_timeout(WAIT)
        driver.execute_cdp_cmd("Network.enable", {})
        yield driver


# -- reading pages --------------------------------------------------------------------------------
def _open(driver: Any, url: str, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    driver.get(url)
    return wait_for(driver, lambda d: d.find_element(By.ID, element_id))


def _verdict(driver: Any) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "verdict")


def _rows(driver: Any, table_id: str) -> dict[int, tuple[str, str]]:
    """``{field number: (label, value)}`` of a table 6 table, in page order."""
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tr[data-field]")
    return {
        int(r.get_attribute("data-field")): (
            r.find_element(By.TAG_NAME, "th").text,
            r.find_element(By.TAG_NAME, "td").text,
        )
        for r in rows
    }


_LAYOUT = """
const width = window.innerWidth;
let widest = 0;
const cut = [];
for (const e of document.body.querySelectorAll("*")) {
  widest = Math.max(widest, e.getBoundingClientRect().right);
  // content wider than its box (clipped or spilling out); a text field scrolls its own text
  if (e.clientWidth > 0 && !["INPUT", "TEXTAREA", "SELECT"].includes(e.tagName)
      && e.scrollWidth > e.clientWidth + 1) {
    cut.push(e.tagName + (e.id ? "#" + e.id : "") + ": " + e.textContent.trim().slice(0, 40));
  }
}
return [width, document.documentElement.scrollWidth, widest, cut];
"""


def _assert_fits_phone(driver: Any) -> None:
    """Laid out at the phone's width, nothing wider: no sideways scrolling, no element sticking
    out on the right, no text cut off or spilling out of its box."""
    width, scroll, widest, cut = driver.execute_script(_LAYOUT)
    assert width == PHONE.width
    assert scroll <= width, f"{driver.current_url}: {scroll} px wide on a {width} px phone"
    assert widest <= width + 0.5, f"{driver.current_url}: an element reaches {widest} px"
    assert cut == [], f"{driver.current_url}: content wider than its box: {cut}"


def _assert_no_internals(driver: Any) -> None:
    source = driver.page_source
    for word in INTERNALS:
        assert word not in source, (word, driver.current_url, source[:500])
    assert "root:" not in source  # no file's content


# a screenshot decoded by the browser itself: its size, how many colours, how much of it is not
# the commonest colour (a blank or single-colour page has a handful of colours; a page of
# anti-aliased text has hundreds)
_PIXELS = """
const [src, done] = arguments;
const img = new Image();
img.onload = () => {
  const c = document.createElement("canvas"); c.width = img.width; c.height = img.height;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const counts = new Map();
  for (let i = 0; i < d.length; i += 4) {
    const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    counts.set(k, (counts.get(k) || 0) + 1);
  }
  let top = 0; for (const v of counts.values()) top = Math.max(top, v);
  done([c.width, c.height, counts.size, 1 - top / (c.width * c.height)]);
};
img.onerror = () => done(null);
img.src = src;
"""


def _pixels(driver: Any, png: Path) -> tuple[int, int, int, float]:
    """(width, height, colours, share not of the commonest colour) of a PNG; leaves the
    browser on about:blank."""
    driver.get("about:blank")
    src = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    got = driver.execute_async_script(_PIXELS, src)
    assert got is not None, f"{png}: the browser could not decode it"
    return int(got[0]), int(got[1]), int(got[2]), float(got[3])


def _full_page(driver: Any, name: str) -> Path:
    """The whole page, not only the viewport, at the phone's width."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = ARTIFACTS / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def forged_for(phone: Any) -> Iterator[Callable[[str], None]]:
    """``forged_for("203.0.113.9")``: the browser sends that X-Forwarded-For on every request
    (as a client may); cleared after the test."""

    def set_(address: str) -> None:
        phone.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-For": address}}
        )

    yield set_
    phone.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


# -- the page states ------------------------------------------------------------------------------
def test_genuine_code_page_on_a_phone(
    phone: Any, resolver: Resolver, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    require_cjk_font()
    verdict = _open(phone, f"{resolver.url}q/{GOOD}", "verdict")
    assert verdict.get_attribute("data-verdict") == "genuine"
    assert verdict.find_element(By.CLASS_NAME, "badge").text == "正品"
    assert verdict.find_element(By.TAG_NAME, "h1").text == "验证通过"
    assert phone.find_element(By.ID, "code").text == GOOD
    assert phone.find_element(By.ID, "count").get_attribute("data-count") == "1"
    assert phone.title == "验证通过 - 食盐追溯查询"

    # every table 6 field, its name as the standard gives it, the snapshot's value; the bag's
    # fields first
    item, category = _rows(phone, "item-fields"), _rows(phone, "category-fields")
    assert list(item) == ITEM_ORDER
    assert list(category) == CATEGORY_ORDER
    shown = {**item, **category}
    assert {n: label for n, (label, _v) in shown.items()} == TABLE6_NAMES
    assert {n: value for n, (_l, value) in shown.items()} == GOOD_VALUES
    assert (
        phone.find_element(By.CSS_SELECTOR, 'tr[data-field="23"]').get_attribute("data-released")
        == "true"
    )
    # the producer's phone is a link a phone can call
    tel = phone.find_element(By.CSS_SELECTOR, 'tr[data-field="10"] a')
    assert tel.get_attribute("href") == f"tel:{ENTERPRISE['phone']}"

    _assert_fits_phone(phone)
    assert renders_chinese(phone)  # a font draws the Chinese, not boxes
    _assert_no_internals(phone)
    top = screenshot(phone, "top")
    full = _full_page(phone, "test_genuine_code_page_on_a_phone-full")
    width, height, colours, ink = _pixels(phone, top)
    assert (width, height) == PHONE.screenshot_size
    assert colours > 100 and ink > 0.2, (colours, ink)
    width, height, colours, _ink = _pixels(phone, full)
    assert width == PHONE.width and height > PHONE.height  # the whole page, longer than a screen
    assert colours > 100


def test_unreleased_batch_is_not_shown_as_passed(
    phone: Any, resolver: Resolver, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    verdict = _open(phone, f"{resolver.url}q/{HELD}", "verdict")
    assert verdict.get_attribute("data-verdict") == "genuine"
    row = phone.find_element(By.CSS_SELECTOR, '#item-fields tr[data-field="23"]')
    assert row.get_attribute("data-released") == "false"
    assert row.find_element(By.TAG_NAME, "th").text == TABLE6_NAMES[23]
    value = row.find_element(By.TAG_NAME, "td").text
    assert value == "尚未放行（检验结果未公布）"
    assert "合格" not in value
    assert _rows(phone, "item-fields")[16] == (TABLE6_NAMES[16], "B-HELD")
    phone.execute_script("arguments[0].scrollIntoView()", row)
    _assert_fits_phone(phone)
    screenshot(phone, "inspection-row")


def test_unknown_code_page(phone: Any, resolver: Resolver, screenshot: Callable[..., Path]) -> None:
    from selenium.webdriver.common.by import By

    # HEAD: the status, without a query record
    req = urllib.request.Request(f"{resolver.url}q/{NOT_HERE}", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 404

    verdict = _open(phone, f"{resolver.url}q/{NOT_HERE}", "verdict")
    assert verdict.get_attribute("data-verdict") == "unknown"
    assert verdict.get_attribute("data-reason") == "not_found"
    assert verdict.find_element(By.CLASS_NAME, "badge").text == "未找到"
    assert verdict.find_element(By.TAG_NAME, "h1").text == "未找到该编码"
    advice = phone.find_element(By.ID, "advice").text
    # check the print and retry; then the producer (known: its phone) or 12315
    assert "请核对包装上印制的追溯编码后重新输入" in advice
    assert ENTERPRISE["name"] in advice and ENTERPRISE["phone"] in advice and "12315" in advice
    # no table 6 fields for a code that is not there; the form to type it again is
    assert phone.find_elements(By.CSS_SELECTOR, "tr[data-field]") == []
    assert phone.find_element(By.ID, "code-input").is_displayed()
    _assert_fits_phone(phone)
    _assert_no_internals(phone)
    screenshot(phone)


@pytest.mark.parametrize(
    ("code", "verdict", "badge", "title", "advice"),
    [
        (RECALLED, "recalled", "已召回", "该产品已召回", "请立即停止食用"),
        (GONE, "withdrawn", "已作废", "该编码已作废", "请保留包装"),
    ],
    ids=["recalled", "withdrawn"],
)
def test_recalled_and_withdrawn_code_pages(
    phone: Any,
    resolver: Resolver,
    screenshot: Callable[..., Path],
    code: str,
    verdict: str,
    badge: str,
    title: str,
    advice: str,
) -> None:
    from selenium.webdriver.common.by import By

    section = _open(phone, f"{resolver.url}q/{code}", "verdict")
    assert section.get_attribute("data-verdict") == verdict
    assert section.get_attribute("data-reason") == verdict
    assert section.find_element(By.CLASS_NAME, "badge").text == badge
    assert section.find_element(By.TAG_NAME, "h1").text == title
    text = phone.find_element(By.ID, "advice").text
    assert advice in text and ENTERPRISE["phone"] in text and "12315" in text
    # the bag's fields are still shown: the consumer can see which bag it is
    assert _rows(phone, "item-fields")[17] == (TABLE6_NAMES[17], code)
    _assert_fits_phone(phone)
    screenshot(phone)


def test_suspected_copy_page(
    phone: Any, resolver: Resolver, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    # a label printed on many bags: queried from several towns before this consumer scans it
    verdicts = []
    for i in range(MAX_QUERIES):
        status, body = resolver.get(
            f"/api/v1/codes/{COPY}", headers={"X-Forwarded-For": f"198.51.{100 + i}.7"}
        )
        assert status == 200
        verdicts.append(json.loads(body)["verdict"])
    assert verdicts == ["genuine"] * MAX_QUERIES

    section = _open(phone, f"{resolver.url}q/{COPY}", "verdict")
    assert section.get_attribute("data-verdict") == "suspect_copy"
    assert section.find_element(By.CLASS_NAME, "badge").text == "疑似仿冒"
    reason = phone.find_element(By.ID, "reason").text
    assert "追溯标识可能被复制" in reason and f"超过 {MAX_QUERIES} 次" in reason
    assert "请仔细核对" in phone.find_element(By.ID, "advice").text
    assert phone.find_element(By.ID, "count").get_attribute("data-count") == str(MAX_QUERIES + 1)
    # the consumer is asked to compare the bag with the page
    assert phone.find_element(By.ID, "fb-no").text == "不一致"
    assert _rows(phone, "item-fields")[17] == (TABLE6_NAMES[17], COPY)
    _assert_fits_phone(phone)
    screenshot(phone)


# -- the forms, end to end ------------------------------------------------------------------------
def test_typed_code_form_end_to_end(
    phone: Any, resolver: Resolver, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    field = _open(phone, resolver.url, "code-input")
    _assert_fits_phone(phone)
    # as people copy a print: lower case, a blank, a hyphen
    field.send_keys("8035 typed-00001")
    screenshot(phone, "typed")
    phone.find_element(By.CSS_SELECTOR, "#lookup button[type=submit]").click()
    wait_for(phone, lambda d: "/check?" in d.current_url and d.find_elements(By.ID, "verdict"))
    assert _verdict(phone).get_attribute("data-verdict") == "genuine"
    assert phone.find_element(By.ID, "code").get_attribute("data-code") == TYPED
    assert _rows(phone, "item-fields")[17][1] == TYPED
    screenshot(phone, "answer")

    row = resolver.exported("queries", lambda r: r["code"] == TYPED)
    assert (row["channel"], row["verdict"], row["count"]) == ("typed", "genuine", "1")
    assert row["place"] == "127.0.0.0/24"


def test_feedback_and_complaint_end_to_end(
    phone: Any, resolver: Resolver, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    # "does the bag match the page?" -- no
    _open(phone, f"{resolver.url}q/{FEEDBACK}", "feedback")
    qid = phone.find_element(By.CSS_SELECTOR, "#feedback input[name=qid]").get_attribute("value")
    phone.find_element(By.ID, "fb-no").click()
    message = wait_for(phone, lambda d: d.find_element(By.ID, "message"))
    assert message.find_element(By.TAG_NAME, "h1").text == "已收到反馈"
    assert "提交投诉" in message.text and "12315" in message.text
    screenshot(phone, "feedback")
    row = resolver.exported("queries", lambda r: r["query_id"] == qid and r["matches"] != "")
    assert (row["code"], row["matches"]) == (FEEDBACK, "no")

    # the complaint form, from the code's page: the code filled in
    _open(phone, f"{resolver.url}q/{FEEDBACK}", "complaint-link").click()
    form = wait_for(phone, lambda d: d.find_element(By.ID, "complaint"))
    assert phone.find_element(By.ID, "c-code").get_attribute("value") == FEEDBACK
    _assert_fits_phone(phone)
    # blanks only where the place goes: the browser lets it through, the resolver does not
    phone.find_element(By.ID, "c-place").send_keys("   ")
    phone.find_element(By.ID, "c-content").send_keys("袋上的生产日期与查询页不一致")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    errors = wait_for(phone, lambda d: d.find_element(By.ID, "errors"))
    assert errors.text == "请填写地点"
    # what was typed is kept
    assert (
        phone.find_element(By.ID, "c-content").get_attribute("value")
        == "袋上的生产日期与查询页不一致"
    )
    _assert_no_internals(phone)
    screenshot(phone, "complaint-error")

    phone.find_element(By.ID, "c-place").send_keys("某省某市某某超市")
    phone.find_element(By.ID, "c-contact").send_keys("13800000000")
    screenshot(phone, "complaint-filled")
    phone.find_element(By.CSS_SELECTOR, "#complaint button[type=submit]").click()
    message = wait_for(phone, lambda d: d.find_element(By.ID, "message"))
    assert message.find_element(By.TAG_NAME, "h1").text == "投诉已提交"
    number = re.search(r"编号 ([A-Za-z0-9_-]{8})", message.text)
    assert number, message.text
    screenshot(phone, "complaint-sent")

    complaint = resolver.exported("complaints", lambda r: r["code"] == FEEDBACK)
    assert complaint["complaint_id"].startswith(number.group(1))
    assert (complaint["place"], complaint["content"], complaint["contact"]) == (
        "某省某市某某超市",
        "袋上的生产日期与查询页不一致",
        "13800000000",
    )
    assert (complaint["channel"], complaint["client_net"]) == ("form", "127.0.0.0/24")


# -- bad input ------------------------------------------------------------------------------------
BAD = [
    # (label, path as typed in the address bar, the page's element, its status, words on it)
    ("too-long", "/q/8035" + "A" * 70, "note", 400, "追溯编码无效"),
    ("non-ascii", "/q/食盐追溯码８０３５", "note", 400, "追溯编码无效"),
    ("encoded-dots", "/q/..%2F..%2Fetc%2Fpasswd", "note", 400, "追溯编码无效"),
    ("nul", "/q/%00", "message", 400, "请求地址含有控制字符"),
    ("nul-in-code", "/q/8035%00ABCDEF", "message", 400, "请求地址含有控制字符"),
    ("nul-typed", "/check?code=8035%00", "message", 400, "查询参数含有控制字符"),
    ("typed-chinese", "/check?code=食盐追溯码", "note", 400, "追溯编码无效"),
    ("dots", "/q/../../etc/passwd", "message", 404, "页面不存在"),
    ("static-dots", "/static/..%2F..%2Fapp.py", "message", 404, "页面不存在"),
    ("not-utf8", "/q/%ff%fe", "message", 400, "无法识别"),
]


@pytest.mark.parametrize(
    ("path", "element", "status", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_input_gets_a_clear_chinese_page(
    phone: Any,
    resolver: Resolver,
    screenshot: Callable[..., Path],
    path: str,
    element: str,
    status: int,
    words: str,
) -> None:
    from selenium.webdriver.common.by import By

    answer = _open(phone, resolver.url.rstrip("/") + path, element)
    assert words in answer.text, answer.text
    if element == "message":
        assert answer.get_attribute("data-status") == str(status)
        title = answer.find_element(By.TAG_NAME, "h1").text
        assert re.fullmatch("[\u4e00-\u9fff]+", title), title  # a title in Chinese
    else:  # the input form again, with the reason above it
        assert phone.find_element(By.ID, "code-input").is_displayed()
    assert phone.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    _assert_no_internals(phone)
    _assert_fits_phone(phone)
    screenshot(phone)
    # the status the browser got, asked the same way (the address the browser sent)
    sent = phone.execute_script("return location.pathname + location.search")
    assert resolver.get(sent)[0] == status


def test_flood_gets_the_chinese_rate_limit_page(
    phone: Any,
    resolver: Resolver,
    screenshot: Callable[..., Path],
    forged_for: Callable[[str], None],
) -> None:
    """A client asking too often (here one behind the trusted proxy, known by its forwarded
    address) gets the Chinese 429 page, not an error page with internals."""
    flooder = {"X-Forwarded-For": "203.0.113.50"}
    statuses = []
    for _ in range(400):  # burst 300, no refill to speak of: the 301st request is refused
        statuses.append(resolver.get("/", headers=flooder)[0])
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses) == {200, 429}, statuses[-3:]

    forged_for("203.0.113.50")
    message = _open(phone, f"{resolver.url}q/{GOOD}", "message")
    assert message.get_attribute("data-status") == "429"
    assert "查询过于频繁" in message.text
    _assert_no_internals(phone)
    screenshot(phone)


# -- over HTTPS behind nginx ----------------------------------------------------------------------
def test_https_behind_nginx_place_from_forwarded_for(
    tmp_path: Path, resolver: Resolver, screenshot: Callable[..., Path]
) -> None:
    """Chromium trusting the test CA opens the page through nginx running
    docker/nginx-resolver.conf. nginx also listens on ::1 (where the machine has it) and
    Chromium reaches ``localhost`` there first: the resolver's peer is nginx (127.0.0.1), and the
    query's place is the client nginx saw (::1, from X-Forwarded-For), not the proxy's network,
    nor the address the client forged. Straight to the resolver, a forwarded address is believed
    because 127.0.0.1 is a trusted proxy."""
    from selenium.webdriver.common.by import By

    from tests.support.certs import make_pki

    require_nginx()
    pki = make_pki(tmp_path / "pki")
    proxy = Nginx(tmp_path / "nginx", pki, resolver.port)
    client = "127.0.0.1"
    if _ipv6_loopback():  # Chromium tries localhost's ::1 first
        site = proxy.site.read_text()
        v4 = f"listen 127.0.0.1:{proxy.https_port} ssl http2;"
        assert v4 in site
        v6 = f"listen [::1]:{proxy.https_port} ssl http2;"
        proxy.site.write_text(site.replace(v4, f"{v4}\n    {v6}"))
        client = "::1"
    proxy.start()
    try:
        with chromium(tmp_path / "browser", trust=pki.ca) as driver:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd(
                "Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-For": "192.0.2.66"}}
            )
            section = _open(driver, f"{proxy.url}/q/{HTTPS}", "verdict")
            assert driver.current_url == f"{proxy.url}/q/{HTTPS}"
            assert section.get_attribute("data-verdict") == "genuine"
            assert _rows(driver, "item-fields")[17] == (TABLE6_NAMES[17], HTTPS)
            # the stylesheet came through the proxy too (same origin, allowed by the CSP)
            colour = driver.execute_script(
                "return getComputedStyle(document.querySelector('.badge')).backgroundColor"
            )
            assert colour == "rgb(26, 127, 55)"
            _assert_fits_phone(driver)
            screenshot(driver, "https")
            # a printed http:// address lands on the https:// page
            driver.get(f"{proxy.http_url}/q/{HTTPS}")
            wait_for(driver, lambda d: d.current_url.startswith("https://"))
            assert driver.find_element(By.ID, "verdict").get_attribute("data-verdict")
    finally:
        proxy.stop()
    access = proxy.access_log.read_text()
    proxied = [line for line in access.splitlines() if f"GET /q/{HTTPS} HTTP/2.0" in line]
    assert len(proxied) == 2 and {line.split()[0] for line in proxied} == {client}, access

    first, second = (
        resolver.exported("queries", lambda r, n=n: r["code"] == HTTPS and r["count"] == n)
        for n in ("1", "2")
    )
    # the client nginx saw (its /48 or /24), not the forged address
    assert (
        first["place"] == second["place"] == {"::1": "::/48", "127.0.0.1": "127.0.0.0/24"}[client]
    )

    # and the resolver believes X-Forwarded-For only because its peer is a trusted proxy
    # (127.0.0.1/32 here): the same header straight from that address is taken as the client
    assert resolver.get(f"/q/{DIRECT}", headers={"X-Forwarded-For": "192.0.2.66"})[0] == 200
    assert resolver.exported("queries", lambda r: r["code"] == DIRECT)["place"] == "192.0.2.0/24"


def test_complaint_through_https_off_port_443(
    tmp_path: Path,
    resolver: Resolver,
    https_proxy: Callable[..., Nginx],
    screenshot: Callable[..., Path],
) -> None:
    """The complaint form through nginx on the test's free port (a deployment on 8443 is the
    same): the browser sends ``Origin: https://localhost:PORT`` and nginx must pass the Host
    with its port (``$http_host``), or the resolver's same-site check refuses the post."""
    from selenium.webdriver.common.by import By

    from tests.support.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    proxy = https_proxy(pki, resolver.port)
    with chromium(tmp_path / "browser", trust=pki.ca) as driver:
        form = _open(driver, f"{proxy.url}/complaint?code={HTTPS_FORM}", "complaint")
        driver.find_element(By.ID, "c-place").send_keys("某市某超市")
        driver.find_element(By.ID, "c-content").send_keys("经 HTTPS 提交的投诉")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        message = wait_for(driver, lambda d: d.find_element(By.ID, "message"))
        screenshot(driver, "answer")
        assert message.find_element(By.TAG_NAME, "h1").text == "投诉已提交", message.text
    complaint = resolver.exported("complaints", lambda r: r["code"] == HTTPS_FORM)
    assert complaint["content"] == "经 HTTPS 提交的投诉"
