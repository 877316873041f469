"""The web console while ``saltgw demo`` runs (issue 19, "Done when": the overview updating
while the demo runs): the real ``saltgw demo`` (embedded broker, simulators on free ports,
gateway, bridge) starts the console and prints its URL and the users it made; headless Chromium
signs in with a printed password and watches the overview change without a reload (bags per
minute, the batch's bag counter), then opens the CCP charts drawn from the demo bridge's trace
store. Screenshots: test-artifacts/screenshots/{test}-{label}.png. Every wait is bounded."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.browser import DESKTOP, chromium, require_browser, wait_for
from tests.support.configs import demo_line_on_free_ports
from tests.support.demo import start_demo

pytestmark = pytest.mark.e2e

DURATION = 120  # the demo's own bound; the test stops it (SIGINT) once it has seen enough
START_SECS = 90.0  # the demo's first lines (simulators, resolver, broker, console)
CHANGE_SECS = 30.0  # a bound; line.counters comes every COUNTERS_SECS while the line runs
COUNTERS_SECS = 2  # the demo map's line_plc profile sends them every 10 s


def line_with_frequent_counters(tmp: Path) -> Path:
    """The demo line on free ports, its PLC profile's line.counters every COUNTERS_SECS."""
    line = demo_line_on_free_ports(tmp)
    data = yaml.safe_load(line.read_text())
    (plc,) = [p for p in data["profiles"] if p["profile"] == "line_plc"]
    plc["counters_every_secs"] = COUNTERS_SECS
    line.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return line


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, element_id).text)


def _bags(driver: Any) -> int | None:
    m = re.match(r"(\d+) / ", _text(driver, "batch_counts"))
    return int(m.group(1)) if m else None


def test_the_console_overview_follows_a_running_demo(
    tmp_path: Path, screenshot: Callable[..., Path]
) -> None:
    require_browser()
    from selenium.webdriver.common.by import By

    demo = start_demo(tmp_path, ("--duration", str(DURATION), "--outbox", str(tmp_path / "ob")),
                      line=line_with_frequent_counters, first_line_secs=START_SECS)  # fmt: skip
    proc, out, err = demo.proc, demo.out, demo.stderr
    try:
        url = out.wait_for(r"console: (http://127\.0\.0\.1:\d+/)$", START_SECS).group(1)
        users = out.wait_for(r"console sign-in \(new each run\): (.+)$", 5).group(1)
        passwords = dict(pair.split(" / ") for pair in users.split(", "))
        with chromium(tmp_path / "browser", viewport=DESKTOP) as driver:
            driver.get(f"{url}login")
            driver.find_element(By.ID, "name").send_keys("operator")
            driver.find_element(By.ID, "password").send_keys(passwords["operator"])
            driver.find_element(By.ID, "signin").click()
            wait_for(driver, lambda d: "/login" not in d.current_url)
            wait_for(driver, lambda d: _text(d, "live") == "实时")
            driver.execute_script("window.__sameDocument = true;")  # gone after a reload
            version = int(driver.find_element(By.ID, "overview").get_attribute("data-version"))
            # the demo's devices come online and bags are counted, pushed over SSE
            wait_for(driver, lambda d: "online" in _text(d, "devices"), timeout=CHANGE_SECS)
            wait_for(driver, lambda d: _bags(d) is not None, timeout=CHANGE_SECS)
            first = _bags(driver)
            assert first is not None
            wait_for(driver, lambda d: (_bags(d) or 0) > first, timeout=CHANGE_SECS)
            wait_for(driver, lambda d: re.fullmatch(r"\d+\.\d", _text(d, "bags_per_min")),
                     timeout=CHANGE_SECS)  # fmt: skip
            assert driver.execute_script("return window.__sameDocument === true;")
            later = int(driver.find_element(By.ID, "overview").get_attribute("data-version"))
            assert later > version
            assert _text(driver, "broker") == "connected"
            rate = _text(driver, "bags_per_min")
            print(f"overview: batch bags {first} -> {_bags(driver)}, bags/min {rate}, "
                  f"versions {version} -> {later}")  # fmt: skip
            screenshot(driver, "overview")

            # the CCP charts, from the demo bridge's trace store
            svg_of = (
                "const done = arguments[0];"
                "fetch('/ccp/net_content.svg').then(r => r.text()).then(done);"
            )
            driver.get(f"{url}ccp")
            wait_for(driver, lambda d: d.find_elements(By.ID, "ccp-net_content"), timeout=30)
            svg = wait_for(driver, lambda d: (t := d.execute_async_script(svg_of)) and
                           re.search(r"points=[1-9]", t) and t, timeout=30)  # fmt: skip
            assert 'class="limit limit-lo"' in svg  # the net content's lower limit, drawn
            wait_for(driver, lambda d: d.execute_script(
                "const i = document.getElementById('ccp-net_content'); return i.complete && "
                "i.naturalWidth > 0;"))  # fmt: skip
            screenshot(driver, "ccp")
        proc.send_signal(signal.SIGINT)  # the demo's Ctrl-C: a clean stop
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.join(10)
    text = err.read_text()
    assert code == 0, "\n".join(lines[-5:]) + text[-3000:]
    assert "Traceback" not in text
    assert lines[-1].startswith("summary: ")
