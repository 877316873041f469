"""The web console of ``saltgw demo`` (gateway/demo_console.py): a real ``saltgw console``
process on a free port whose printed users sign in with the printed passwords (new each run),
and the clear message instead when the ``resolver`` extra is not installed."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from gateway.bridge.demo import with_demo_bridge
from gateway.config.loader import load_config
from gateway.demo import demo_config_path
from gateway.demo_console import demo_console
from tests.support.extras import blocked_env
from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

SIGN_IN = re.compile(r"^console sign-in \(new each run\): (.+)$", re.M)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _sign_in(url: str, name: str, password: str) -> int:
    body = urllib.parse.urlencode({"name": name, "password": password}).encode()
    req = urllib.request.Request(f"{url}login", body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _passwords(text: str) -> dict[str, str]:
    m = SIGN_IN.search(text)
    assert m, text
    return dict(pair.split(" / ") for pair in m.group(1).split(", "))


def test_the_demo_console_serves_and_its_printed_users_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = with_demo_bridge(load_config(demo_config_path()), tmp_path / "outbox")
    seen: list[dict[str, str]] = []
    for _ in range(2):
        out = io.StringIO()
        with demo_console(cfg, "mqtt://127.0.0.1:1", tmp_path / "var", out) as url:
            assert url is not None, out.getvalue()
            assert re.search(rf"^console: {re.escape(url)}$", out.getvalue(), re.M)
            passwords = _passwords(out.getvalue())
            assert set(passwords) == {"operator", "quality", "admin"}
            for name, pw in passwords.items():
                assert _sign_in(url, name, pw) == 303, name
            assert _sign_in(url, "admin", "not-the-password") == 401
            with urllib.request.urlopen(f"{url}healthz", timeout=10) as r:
                assert json.loads(r.read())["status"] == "ok"
        seen.append(passwords)
    assert seen[0]["admin"] != seen[1]["admin"]  # generated afresh, never a fixed password
    users = tmp_path / "var" / "demo-console-users.json"
    assert users.stat().st_mode & 0o077 == 0
    assert seen[1]["admin"] not in users.read_text()  # hashes only
    written = json.loads((tmp_path / "var" / "demo-console.yaml").read_text())["console"]
    assert written["store"] == str(tmp_path / "var" / "demo-bridge.db")
    assert written["broker"] == "mqtt://127.0.0.1:1"


def test_without_the_resolver_extra_the_demo_goes_on_without_its_console(tmp_path: Path) -> None:
    code = (
        "import io, sys\n"
        "from pathlib import Path\n"
        "from gateway.config.loader import load_config\n"
        "from gateway.demo import demo_config_path\n"
        "from gateway.demo_console import demo_console\n"
        "out = io.StringIO()\n"
        "with demo_console(load_config(demo_config_path()), 'mqtt://127.0.0.1:1',\n"
        "                  Path(sys.argv[1]), out) as url:\n"
        "    print(repr(url))\n"
        "print(out.getvalue(), end='')\n"
    )
    env = blocked_env(tmp_path, ("waitress", "jinja2", "markupsafe"))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "var")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "None",
        "console: not started (pip install 'saltgw[resolver]')",
    ]
    assert not (tmp_path / "var" / "demo-console-users.json").exists()
