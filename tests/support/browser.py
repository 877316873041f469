"""Real headless-browser tests: Debian's Chromium driven by Selenium through Debian's
chromedriver, at a phone-sized viewport, with screenshots kept as test artifacts.

- ``browser`` (fixture): a WebDriver on a fresh profile, phone-sized (:data:`PHONE`), quit and
  every Chromium process it started gone after the test. Tests that need other options (a
  trusted test CA for an HTTPS page, another viewport) use :func:`chromium` themselves.
- ``screenshot`` (fixture): ``screenshot(driver, "label")`` saves
  ``{ARTIFACTS}/screenshots/{test name}[-label].png`` and returns its path.
- :func:`wait_for`: a WebDriverWait with a bound (default :data:`WAIT`).

Nothing is downloaded: the driver is given by path (Selenium Manager is never asked) and
``SE_OFFLINE`` is set for good measure. Without Chromium or chromedriver the tests skip on a
developer's machine and fail in CI (``scripts/setup.sh dev apt`` installs both).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.nssdb import trust_ca
from tests.support.pgroup import kill_members

__all__ = [
    "ARTIFACTS",
    "CHROMEDRIVER",
    "CHROMIUM",
    "PHONE",
    "WAIT",
    "Viewport",
    "browser_available",
    "chromium",
    "cjk_font_available",
    "renders_chinese",
    "require_browser",
    "require_cjk_font",
    "save_screenshot",
    "set_viewport",
    "wait_for",
]

ROOT = Path(__file__).parents[2]
CHROMIUM = os.environ.get("SALTGW_CHROMIUM") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("SALTGW_CHROMEDRIVER") or "/usr/bin/chromedriver"
# screenshots go to $SALTGW_TEST_ARTIFACTS/screenshots/, by default test-artifacts/ in the
# repository (git-ignored)
ARTIFACTS = Path(os.environ.get("SALTGW_TEST_ARTIFACTS") or ROOT / "test-artifacts")
WAIT = 10.0  # seconds: the longest any wait_for waits unless told otherwise

# The machine has no network but loopback: without these, Chromium tries Google's hosts at
# every start (refused, many at a time). --no-sandbox: the tests run as root in CI.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
    "--lang=zh-CN",
)

# a phone's user agent: pages that look at it (not only the viewport) see a phone
_MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)


@dataclass(frozen=True)
class Viewport:
    width: int
    height: int
    scale: float = 1.0  # device pixels per CSS pixel: a screenshot is width*scale wide
    mobile: bool = True

    @property
    def screenshot_size(self) -> tuple[int, int]:
        return round(self.width * self.scale), round(self.height * self.scale)


PHONE = Viewport(390, 844)  # CSS pixels of a common phone (iPhone 12-15)
DESKTOP = Viewport(1280, 800, mobile=False)

T = TypeVar("T")


def _executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def browser_available() -> bool:
    return _executable(CHROMIUM) and _executable(CHROMEDRIVER)


def require_browser() -> None:
    """Skip (on a developer's machine) or fail (in CI) when Chromium or chromedriver is missing;
    Selenium is a dev extra, missing only in a venv without it."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not _executable(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if not missing:
        return
    reason = (
        f"browser tests need {', '.join(missing)} "
        "(Debian's chromium and chromium-driver: scripts/setup.sh dev apt)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install them (.ci/run runs scripts/test.sh)")
    pytest.skip(reason)


def cjk_font_available() -> bool:
    """fontconfig (which Chromium asks for a fallback font) knows a font with Chinese glyphs."""
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(out.strip())


def require_cjk_font() -> None:
    """Skip (locally) or fail (in CI) without a Chinese font: the pages are in Chinese, and
    without one a screenshot shows boxes where the text should be."""
    if cjk_font_available():
        return
    reason = "no font with Chinese glyphs (fc-list :lang=zh; Debian's fonts-wqy-microhei)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it (scripts/setup.sh dev apt)")
    pytest.skip(reason)


# Two different characters drawn on a canvas: with a Chinese font they differ; without one both
# are the same "missing glyph" box.
_GLYPHS_DIFFER = """
const draw = (ch) => {
  const c = document.createElement("canvas"); c.width = 64; c.height = 64;
  const g = c.getContext("2d"); g.font = "48px sans-serif"; g.fillText(ch, 4, 52);
  return Array.from(g.getImageData(0, 0, 64, 64).data).join(",");
};
return draw(arguments[0]) !== draw(arguments[1]);
"""


def renders_chinese(driver: Any, a: str = "食", b: str = "盐") -> bool:
    """Whether the browser draws Chinese characters as distinct glyphs (not as boxes)."""
    return bool(driver.execute_script(_GLYPHS_DIFFER, a, b))


def set_viewport(driver: Any, viewport: Viewport) -> None:
    """Emulate a device of this size (CSS pixels, device scale, touch and a phone's user agent
    when ``mobile``) through the DevTools protocol, for the pages loaded from now on."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": viewport.width,
            "height": viewport.height,
            "deviceScaleFactor": viewport.scale,
            "mobile": viewport.mobile,
        },
    )
    driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": viewport.mobile})
    if viewport.mobile:
        driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": _MOBILE_UA})


@contextmanager
def chromium(
    workdir: Path, *, viewport: Viewport = PHONE, trust: Path | None = None
) -> Iterator[Any]:
    """A Selenium WebDriver for Debian's headless Chromium with a new profile in ``workdir``;
    ``trust``: a CA certificate (PEM) Chromium trusts for HTTPS, as a root added by a person.
    On exit the driver quits and any process of its group still alive is killed."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"  # Chromium reads its NSS trust store from $HOME/.pki/nssdb
    home.mkdir(exist_ok=True)
    if trust is not None:
        trust_ca(home, trust)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'profile'}")
    options.add_argument(f"--window-size={viewport.width},{viewport.height}")
    env = {**os.environ, "HOME": str(home)}
    service = Service(
        executable_path=CHROMEDRIVER,
        log_output=str(workdir / "chromedriver.log"),
        env=env,
        popen_kw={"start_new_session": True},
    )
    try:
        driver = _start(webdriver, options, service)
    except BaseException:  # no session: whatever chromedriver started must not outlive us
        if getattr(service, "process", None) is not None:
            kill_members(service.process.pid)
        raise
    pgid = service.process.pid
    try:
        driver.set_page_load_timeout(WAIT * 3)
        set_viewport(driver, viewport)
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            kill_members(pgid)


def _start(webdriver: Any, options: Any, service: Any) -> Any:
    """webdriver.Chrome with SE_OFFLINE set meanwhile: the driver's path is given, so Selenium
    Manager is not asked; were it asked, it must not download a browser or driver."""
    before = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"
    try:
        return webdriver.Chrome(options=options, service=service)
    finally:
        if before is None:
            del os.environ["SE_OFFLINE"]
        else:
            os.environ["SE_OFFLINE"] = before


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150]


def save_screenshot(driver: Any, name: str) -> Path:
    """Save the page as ``{ARTIFACTS}/screenshots/{name}.png``; return the path."""
    path = ARTIFACTS / "screenshots" / f"{_slug(name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"Chromium wrote no screenshot to {path}")
    return path


def wait_for(driver: Any, condition: Callable[[Any], T], timeout: float = WAIT) -> T:
    """``WebDriverWait(driver, timeout).until(condition)``: the condition's first truthy value,
    or a TimeoutException naming the page after ``timeout`` seconds."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        condition, f"waited {timeout}s on {driver.current_url}"
    )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A phone-sized headless Chromium (Selenium WebDriver) on a fresh profile."""
    with chromium(tmp_path / "browser") as driver:
        yield driver


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``screenshot(driver, label="")`` -> the PNG's path, named after the test."""

    def take(driver: Any, label: str = "") -> Path:
        name = request.node.nodeid.split("::", 1)[-1]
        return save_screenshot(driver, f"{name}-{label}" if label else name)

    return take
