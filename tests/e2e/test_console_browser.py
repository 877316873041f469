"""The web console in a real headless browser (issue 19): ``saltgw console`` run as a user runs
it, over a real mosquitto and a trace store filled as the bridge fills it
(tests/support/console.py), read by Debian's Chromium at a desktop viewport
(tests/support/browser.py). Screenshots: test-artifacts/screenshots/{test}-{label}.png.

The gateway's side is published to the broker here, in the contract's formats (docs/events.md:
retained device states and kpi, events), with timestamps fixed in the test, not taken from the
clock: the overview must change without a reload within a second or so; the chart must show an
injected scan-rate dip under the drawn threshold."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Mosquitto, mosquitto_available
from tests.support.browser import DESKTOP, chromium, wait_for
from tests.support.console import (
    PASSWORDS,
    ConsoleData,
    console_file,
    fill_store,
    make_users,
)
from tests.support.procs import ROOT, announced_url, saltgw, stop

pytestmark = pytest.mark.e2e

ROOT_TOPIC = "salt/v1/8035/daiyue/L1"
BATCH = "20261122-L1-01"
LIVE_SECS = 3.0  # the overview shows a published change within this (SSE; the issue: 1 s)


@dataclass
class Console:
    url: str
    data: ConsoleData
    mqtt: Any  # a paho client connected to the console's broker

    def publish(self, topic: str, body: dict[str, Any], retain: bool = False) -> None:
        info = self.mqtt.publish(f"{ROOT_TOPIC}/{topic}", json.dumps(body), qos=1, retain=retain)
        info.wait_for_publish(timeout=5)
        assert info.is_published()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    tmp = tmp_path_factory.mktemp("console")
    broker = Mosquitto(tmp / "mqtt")
    broker.start()
    data = fill_store(tmp / "bridge.db")
    users = make_users(tmp / "users.json")
    cfg = console_file(tmp, data.store, users, broker.port)
    log = tmp / "console.log"
    proc = saltgw("console", str(cfg), log=log)
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    try:
        url = announced_url(log, proc, "console")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        yield Console(url, data, client)
    finally:
        client.disconnect()
        client.loop_stop()
        assert stop(proc) == 0, log.read_text()
        broker.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "browser", viewport=DESKTOP) as driver:
        yield driver


def _sign_in(driver: Any, console: Console, name: str, then: str = "/") -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{console.url}login?next={then}")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[name])
    driver.find_element(By.ID, "signin").click()
    wait_for(driver, lambda d: "/login" not in d.current_url)


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def _kpi(i: int, scan_rate: float, shift: str = "A") -> dict[str, Any]:
    ts = f"2026-11-22T10:{i // 12:02d}:{i % 12 * 5:02d}.000+08:00"
    scope = {"id": shift, "since": "2026-11-22T08:00:00+08:00", "scan_rate": 0.99,
             "noread_rate": 0.01, "aggregation_rft": 1.0}  # fmt: skip
    return {"ts": ts, "line": "L1", "shift": shift, "batch": BATCH, "threshold": 0.98,
            "window": {"secs": 60.0, "produced": 120, "valid": round(120 * scan_rate),
                       "scan_rate": scan_rate},
            "scopes": {"shift": scope}}  # fmt: skip


def test_sign_in_and_the_overview_follows_mqtt_live(
    browser: Any, console: Console, screenshot: Callable[..., Path]
) -> None:
    _sign_in(browser, console, "olga")
    wait_for(browser, lambda d: _text(d, "live") == "实时")
    before = _text(browser, "who")
    assert "olga" in before and "operator" in before
    console.publish("state/cw1", {"device": "cw1", "state": "offline",
                                  "detail": "connection to 127.0.0.1:502 refused",
                                  "ts": "2026-11-22T10:15:30.123+08:00", "gateway": "gw-1"},
                    retain=True)  # fmt: skip
    t0 = time.monotonic()
    wait_for(browser, lambda d: "offline" in _text(d, "devices"), timeout=LIVE_SECS)
    took = time.monotonic() - t0
    event = {"id": "e-1", "gateway": "gw-1", "seq": 1, "type": "alarm.device",
             "ts": "2026-11-22T10:15:31.000+08:00", "enterprise": "8035", "site": "daiyue",
             "line": "L1", "device": "cw1", "batch": BATCH,
             "data": {"state": "offline", "previous": "online",
                      "detail": "connection to 127.0.0.1:502 refused"}}  # fmt: skip
    console.publish("alarm/device", event)
    line = {**event, "id": "e-2", "seq": 2, "type": "line.state", "device": "plc1",
            "data": {"state": 6, "state_name": "Execute", "mode": 1, "mode_name": "Production",
                     "previous": 4, "previous_name": "Idle"}}  # fmt: skip
    console.publish("event/line/state", line)
    console.publish("kpi", _kpi(0, 0.99), retain=True)
    wait_for(browser, lambda d: _text(d, "packml") == "Execute", timeout=LIVE_SECS)
    wait_for(browser, lambda d: _text(d, "batch") == BATCH, timeout=LIVE_SECS)
    wait_for(browser, lambda d: "alarm.device" in _text(d, "alarms"), timeout=LIVE_SECS)
    assert _text(browser, "scan_rate_window") == "99.0%"
    assert _text(browser, "threshold") == "98.0%"
    screenshot(browser, "overview")
    print(f"overview showed the device's state {took:.2f} s after it was published")
    assert took < LIVE_SECS


def test_the_chart_shows_an_injected_scan_rate_dip_under_the_threshold(
    browser: Any, console: Console, screenshot: Callable[..., Path]
) -> None:
    rates = [0.995, 0.993, 0.996, 0.994, 0.95, 0.91, 0.93, 0.992, 0.995, 0.994]
    for i, r in enumerate(rates, start=1):
        console.publish("kpi", _kpi(i, r, shift="B"), retain=True)
    _sign_in(browser, console, "olga", "/charts?shift=B")
    svg_of = (
        "const done = arguments[0];"
        "fetch('/charts/scan-rate.svg?shift=B').then(r => r.text()).then(done);"
    )
    svg = wait_for(browser, lambda d: (t := d.execute_async_script(svg_of)) and
                   "points=10 " in t and t)  # fmt: skip
    assert "below_threshold=3" in svg  # 0.95, 0.91, 0.93 under 0.98
    assert 'class="threshold"' in svg and "报警阈值 98.0%" in svg
    wait_for(browser, lambda d: d.execute_script(
        "const i = document.getElementById('chart-scan-rate'); return i.complete && "
        "i.naturalWidth > 0;"))  # fmt: skip
    screenshot(browser, "dip")
    # a later dip reaches the open page without a reload
    src = browser.execute_script("return document.getElementById('chart-scan-rate').src")
    console.publish("kpi", _kpi(11, 0.88, shift="B"), retain=True)
    wait_for(
        browser,
        lambda d: d.execute_script("return document.getElementById('chart-scan-rate').src") != src,
        timeout=LIVE_SECS,
    )
    svg = wait_for(browser, lambda d: (t := d.execute_async_script(svg_of)) and
                   "points=11 " in t and t)  # fmt: skip
    assert "below_threshold=4" in svg


def test_trace_search_finds_a_bags_case_pallet_and_customer(
    browser: Any, console: Console, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    plan = console.data.plans[0]
    bag = plan.bags[0]
    case = next(c for c, bags in plan.cases.items() if bag in bags)
    pallet = next(p for p, cases in plan.pallets.items() if case in cases)
    _sign_in(browser, console, "quinn", "/trace")
    browser.find_element(By.ID, "code").send_keys(bag)
    browser.find_element(By.ID, "search").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "trace-result"))
    assert _text(browser, "t-batch") == plan.batch
    assert _text(browser, "t-case") == case
    assert _text(browser, "t-pallet") == pallet
    assert "某某盐业批发公司" in _text(browser, "outbound")
    screenshot(browser, "trace")


def test_recall_export_matches_saltgw_trace_batch(
    browser: Any, console: Console, screenshot: Callable[..., Path]
) -> None:
    from selenium.webdriver.common.by import By

    plan = console.data.plans[1]
    _sign_in(browser, console, "quinn", f"/recall?batch={plan.batch}")
    wait_for(browser, lambda d: d.find_elements(By.ID, "export"))
    assert "某某盐业批发公司" in _text(browser, "customers")
    screenshot(browser, "recall")
    href = browser.find_element(By.ID, "export").get_attribute("href")
    got = browser.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0]).then(r => r.text()).then(done);", href
    )
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(got.lstrip("\ufeff"))))
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "trace", "--batch", plan.batch,
         "--store", str(console.data.store), "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    ).stdout.splitlines()  # fmt: skip
    codes = [json.loads(x) for x in out[1:]]
    assert len(rows) == len(codes) == len(plan.bags)
    for row, c in zip(rows, codes, strict=True):
        assert row["code"] == c["code"]
        assert row["commissioned"] == c["commissioned"]
        assert row["case"] == (c["case"] or "")
        assert row["pallet"] == (c["pallet"] or "")
        assert row["document"] == (c["document"] or "")
        assert row["document_state"] == (c["state"] or "")
        assert row["outbound"] == "; ".join(
            f"{o['order']} → {o['customer']}" for o in c["outbound"]
        )
    assert any(r["outbound"] for r in rows) and any(not r["outbound"] for r in rows)
    log = subprocess.run(
        [sys.executable, "-m", "gateway", "trace", "--access-log", "20",
         "--store", str(console.data.store), "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    ).stdout.splitlines()  # fmt: skip
    entries = [json.loads(x) for x in log]
    assert any(e["user"] == "quinn (quality, console)" and e["query"] == "export"
               and e["subject"] == plan.batch and e["outcome"] == "found"
               for e in entries)  # fmt: skip


def test_an_operator_is_refused_a_quality_action(
    browser: Any, console: Console, screenshot: Callable[..., Path]
) -> None:
    bag = console.data.plans[0].bags[1]
    _sign_in(browser, console, "olga", f"/trace?code={bag}")
    wait_for(browser, lambda d: _text(d, "title") == "无权限")
    assert "quality" in _text(browser, "text")
    assert bag not in browser.page_source.replace(f"code={bag}", "")
    screenshot(browser, "forbidden")
