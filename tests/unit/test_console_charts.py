"""The console's SVG charts (gateway/console/charts.py): the rate charts' y range and time
labels, and the CCP charts (values against their limits; yes/no verdicts) drawn from a real
trace store through the WSGI application (tests/support/console.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from gateway.console.app import ConsoleApp
from gateway.console.charts import RIGHT, TOP, CcpPoint, H, W, ccp_value_chart, rate_chart
from gateway.console.config import ConsoleSection
from gateway.console.live import LineState
from gateway.console.records import ConsoleStore
from gateway.console.users import UsersFile
from tests.support.console import ConsoleData, fill_store, make_users
from tests.unit.test_console_auth import Clock, Env

TZ = timezone(timedelta(hours=8))
T0 = 1_795_000_000.0  # a fixed time: nothing here reads the clock


def _desc(svg: str) -> dict[str, str]:
    m = re.search(r"<desc>([^<]*)</desc>", svg)
    assert m, svg[-300:]
    return dict(kv.split("=") for kv in m.group(1).split())


def _circle_ys(svg: str, cls: str = "") -> list[float]:
    pat = rf'<circle class="{cls}[^"]*" cx="[\d.]+" cy="([\d.]+)"' if cls else r'cy="([\d.]+)"'
    return [float(v) for v in re.findall(pat, svg)]


def test_a_low_no_read_rate_gets_a_y_range_that_shows_it() -> None:
    points = [(T0 + 60 * i, r) for i, r in enumerate([0.004, 0.006, 0.012, 0.009, 0.011])]
    svg = rate_chart(points, title="未读率", threshold=None, tz=TZ, high_is_bad=True)
    d = _desc(svg)
    assert float(d["y_min"]) == 0.0 and float(d["y_max"]) == pytest.approx(0.02)
    ys = [float(y) for y in re.findall(r"[\d.]+,([\d.]+)", svg.split('class="series"')[1])]
    plot = H - TOP - 32
    assert max(ys) - min(ys) > plot / 4  # 0.4 % .. 1.2 % spans a good part of the height
    assert "2.00%" in svg  # the top of the axis, with the digits a small range needs
    # with a threshold, the samples over it (high is bad) are the marked ones
    svg = rate_chart(points, title="未读率", threshold=0.01, tz=TZ, high_is_bad=True)
    assert _desc(svg)["below_threshold"] == "2"


def test_a_scan_rate_still_runs_up_to_100_percent_and_marks_the_dip() -> None:
    points = [(T0 + 60 * i, r) for i, r in enumerate([0.995, 0.95, 0.99])]
    d = _desc(rate_chart(points, title="扫码率", threshold=0.98, tz=TZ))
    assert float(d["y_max"]) == 1.0 and d["below_threshold"] == "1"


def test_the_time_labels_stay_inside_the_chart() -> None:
    points = [(T0, 0.99), (T0 + 3600, 0.99)]
    svg = rate_chart(points, title="x", threshold=None, tz=TZ)
    labels = re.findall(r'<text x="([\d.]+)" y="\d+" font-size="11" text-anchor="(\w+)"'
                        r' fill="#555">(\d\d:\d\d:\d\d)</text>', svg)  # fmt: skip
    assert [(a, t) for _, a, t in labels] == [
        ("start", "19:06:40"), ("middle", "19:36:40"), ("end", "20:06:40")]  # fmt: skip
    assert float(labels[-1][0]) == W - RIGHT  # ends at the plot's right edge, not beyond W


def test_ccp_values_against_limits_that_change() -> None:
    values = [(401, 388), (385, 388), (392, 390), (389, 390)]  # (g, lower limit)
    pts = [CcpPoint(T0 + i, v, None, lo, 420.0, "pass" if lo <= v <= 420 else "fail")
           for i, (v, lo) in enumerate(values)]  # fmt: skip
    svg = ccp_value_chart(pts, title="净含量", unit="g", tz=TZ)
    d = _desc(svg)
    assert d == {"points": "4", "fail": "2", "lo": "390", "hi": "420"}
    assert 'class="limit limit-lo"' in svg and 'class="limit limit-hi"' in svg
    steps = re.search(r'class="limit limit-lo" points="([^"]+)"', svg)
    assert steps and len({p.split(",")[1] for p in steps.group(1).split()}) == 2  # 388, then 390
    fail_ys, pass_ys = _circle_ys(svg, "fail"), _circle_ys(svg, "pass")
    assert len(fail_ys) == 2 and len(pass_ys) == 2
    assert max(fail_ys) > max(pass_ys)  # 385 is drawn lowest
    assert "下限 390" in svg and "上限 420" in svg and "净含量（g）" in svg


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> ConsoleData:
    return fill_store(tmp_path_factory.mktemp("store") / "bridge.db")


@pytest.fixture
def env(tmp_path: Path, data: ConsoleData) -> Iterator[Env]:
    users = make_users(tmp_path / "users.json")
    cfg = ConsoleSection(enterprise="8035", site="daiyue", line="L1", users=users,
                         store=data.store, timezone="+08:00")  # fmt: skip
    store = ConsoleStore(cfg)
    yield Env(ConsoleApp(cfg, LineState(cfg), store, UsersFile(users), Clock()), data, Clock())
    store.close()


def test_the_ccp_page_charts_each_kind_from_the_trace_store(env: Env) -> None:
    plan = env.data.plans[0]
    cookie, _ = env.sign_in("olga")  # an operator may look
    page = env.call("GET", f"/ccp?batch={plan.batch}", cookie=cookie)
    assert page.status == 200, page.text
    assert 'data-kind="net_content"' in page.text and 'data-kind="metal_detector"' in page.text
    assert 'data-kind="iodine"' not in page.text  # no such records: no empty chart
    assert f"/ccp/net_content.svg?batch={plan.batch}" in page.text
    net = env.call("GET", f"/ccp/net_content.svg?batch={plan.batch}", cookie=cookie)
    assert net.status == 200 and net.headers["Content-Type"].startswith("image/svg+xml")
    fails = sum(1 for i in range(len(plan.bags)) if i % 7 == 3)  # tests/support/trace_events.py
    assert _desc(net.text) == {"points": str(len(plan.bags)), "fail": str(fails), "lo": "388",
                               "hi": "-"}  # fmt: skip
    md = env.call("GET", f"/ccp/metal_detector.svg?batch={plan.batch}", cookie=cookie)
    assert _desc(md.text) == {"points": "1", "fail": "0"}
    both = env.call("GET", "/ccp/net_content.svg", cookie=cookie)  # every batch kept
    assert _desc(both.text)["points"] == str(sum(len(p.bags) for p in env.data.plans))
    assert env.call("GET", "/ccp/boiler.svg", cookie=cookie).status == 404
    assert env.call("GET", "/ccp/net_content.svg").status == 401  # signed in only
    assert env.call("GET", "/ccp?batch=a%20b", cookie=cookie).status == 400
