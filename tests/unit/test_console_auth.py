"""The web console's sign-in, roles, CSRF and access log (docs/console.md), through its WSGI
application in-process, over a real trace store (tests/support/console.py)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from gateway.bridge.access import recent
from gateway.bridge.schema import connect
from gateway.console.app import ConsoleApp
from gateway.console.config import ConsoleSection
from gateway.console.live import LineState
from gateway.console.records import ConsoleStore
from gateway.console.users import UsersFile, allowed, hash_password, verify_password
from tests.support.console import PASSWORDS, ConsoleData, fill_store, make_users


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Env:
    app: ConsoleApp
    data: ConsoleData
    clock: Clock

    def call(self, method: str, path: str, form: dict[str, str] | None = None,
             cookie: str | None = None, **extra: str) -> Answer:  # fmt: skip
        p, _, qs = path.partition("?")
        body = urlencode(form or {}).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method, "PATH_INFO": p, "QUERY_STRING": qs,
            "REMOTE_ADDR": "10.0.0.7", "HTTP_HOST": "console.test",
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded" if form is not None else "",
            **extra,
        }  # fmt: skip
        if cookie:
            environ["HTTP_COOKIE"] = cookie
        got: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]]) -> None:
            got["status"] = int(status.split()[0])
            got["headers"] = headers

        chunks = self.app(environ, start)
        out = b"".join(chunks) if isinstance(chunks, list) else b""
        hdrs = got["headers"]
        return Answer(got["status"], dict(hdrs), out, [v for k, v in hdrs if k == "Set-Cookie"])

    def sign_in(self, name: str) -> tuple[str, str]:
        """(cookie, csrf) of a fresh session of ``name``."""
        a = self.call("POST", "/login", {"name": name, "password": PASSWORDS[name], "next": "/"})
        assert a.status == 303, a.text
        cookie = a.cookies[0].split(";")[0]
        page = self.call("GET", "/", cookie=cookie)
        m = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert m is not None
        return cookie, m.group(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> ConsoleData:
    return fill_store(tmp_path_factory.mktemp("store") / "bridge.db")


@pytest.fixture
def env(tmp_path: Path, data: ConsoleData) -> Iterator[Env]:
    users = make_users(tmp_path / "users.json")
    cfg = ConsoleSection(enterprise="8035", site="daiyue", line="L1", users=users,
                         store=data.store, timezone="+08:00")  # fmt: skip
    clock = Clock()
    store = ConsoleStore(cfg)
    app = ConsoleApp(cfg, LineState(cfg), store, UsersFile(users), clock)
    yield Env(app, data, clock)
    store.close()


def _log(data: ConsoleData) -> list[tuple[str, str, str | None, str]]:
    db = connect(data.store, create=False)
    try:
        return [(e.user, e.query, e.subject, e.outcome) for e in recent(db, 1000)]
    finally:
        db.close()


def test_passwords_are_scrypt_hashed_and_checked() -> None:
    stored = hash_password("correct horse", n=2**10)
    assert stored.startswith("scrypt$1024$8$1$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("x", "scrypt$bad")
    assert not verify_password("x", "md5$1$2$3$00$00")


def test_users_file_is_owner_only_and_reloaded(tmp_path: Path) -> None:
    path = make_users(tmp_path / "u.json")
    assert path.stat().st_mode & 0o777 == 0o600
    users = UsersFile(path)
    assert {u.name: u.role for u in users.load().values()} == {
        "olga": "operator", "quinn": "quality", "ada": "admin"}  # fmt: skip
    assert "operator-pw-1" not in path.read_text()
    path.write_text(json.dumps({"users": [{"name": "x y", "role": "boss", "password": "p"}]}))
    with pytest.raises(Exception, match=r"users\[0\]"):
        UsersFile(path).load()


def test_roles_include_the_ones_below() -> None:
    assert allowed("operator", "view") and not allowed("operator", "trace")
    assert allowed("quality", "export") and not allowed("quality", "resend")
    assert all(allowed("admin", a) for a in ("view", "trace", "recall", "export", "resend"))
    assert not allowed("nobody", "view") and not allowed("admin", "launch")


def test_pages_need_a_session_and_a_right_password(env: Env) -> None:
    a = env.call("GET", "/trace?code=X")
    assert a.status == 303 and a.headers["Location"] == "/login?next=/trace"
    assert env.call("GET", "/api/line").status == 401
    assert env.call("GET", "/events").status == 401
    bad = env.call("POST", "/login", {"name": "quinn", "password": "wrong-password"})
    assert bad.status == 401 and not bad.cookies
    good = env.call("POST", "/login", {"name": "quinn", "password": PASSWORDS["quinn"],
                                       "next": "//evil.example/"})  # fmt: skip
    assert good.status == 303 and good.headers["Location"] == "/"  # never another site
    cookie = good.cookies[0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Content-Security-Policy" in good.headers
    log = _log(env.data)
    assert ("quinn (console)", "signin", "quinn", "refused") in log
    assert ("quinn (quality, console)", "signin", "quinn", "done") in log


def test_sessions_expire_and_sign_out(env: Env) -> None:
    cookie, csrf = env.sign_in("olga")
    assert env.call("GET", "/", cookie=cookie).status == 200
    assert env.call("POST", "/logout", {"csrf": "forged"}, cookie=cookie).status == 403
    assert env.call("POST", "/logout", {"csrf": csrf}, cookie=cookie).status == 303
    assert env.call("GET", "/", cookie=cookie).status == 303
    cookie, _ = env.sign_in("olga")
    env.clock.now += env.app.cfg.session_secs + 1
    assert env.call("GET", "/", cookie=cookie).status == 303


def test_failed_sign_ins_are_throttled(env: Env) -> None:
    for _ in range(5):
        env.call("POST", "/login", {"name": "ada", "password": "guess-guess"})
    a = env.call("POST", "/login", {"name": "ada", "password": PASSWORDS["ada"]})
    assert a.status == 429 and not a.cookies
    env.clock.now += 301
    assert env.call("POST", "/login", {"name": "ada", "password": PASSWORDS["ada"]}).status == 303


def test_an_operator_is_refused_quality_actions_and_the_refusal_is_logged(env: Env) -> None:
    cookie, csrf = env.sign_in("olga")
    bag = env.data.plans[0].bags[0]
    assert env.call("GET", "/", cookie=cookie).status == 200
    assert env.call("GET", "/uploads", cookie=cookie).status == 200
    for path in (f"/trace?code={bag}", "/recall?batch=20261122-L1-01",
                 "/recall.csv?batch=20261122-L1-01", "/access"):  # fmt: skip
        a = env.call("GET", path, cookie=cookie)
        assert a.status == 403, path
        assert bag not in a.text
    a = env.call("POST", "/uploads/resend", {"csrf": csrf, "number": env.data.quarantined},
                 cookie=cookie)  # fmt: skip
    assert a.status == 403
    log = _log(env.data)
    who = "olga (operator, console)"
    assert (who, "trace", bag, "forbidden") in log
    assert (who, "export", "20261122-L1-01", "forbidden") in log
    assert (who, "resend", env.data.quarantined, "forbidden") in log


def test_trace_recall_and_export_are_logged_before_the_answer(env: Env) -> None:
    cookie, _ = env.sign_in("quinn")
    plan = env.data.plans[0]
    bag = plan.bags[0]
    a = env.call("GET", f"/trace?code={bag}", cookie=cookie)
    assert a.status == 200 and next(iter(plan.cases)) in a.text
    assert env.call("GET", "/trace?code=8035NOSUCHCODE", cookie=cookie).status == 404
    csv = env.call("GET", f"/recall.csv?batch={plan.batch}", cookie=cookie)
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert len(csv.body.decode("utf-8-sig").splitlines()) == len(plan.bags) + 1
    who = "quinn (quality, console)"
    log = _log(env.data)
    assert (who, "code", bag, "found") in log
    assert (who, "code", "8035NOSUCHCODE", "not found") in log
    assert (who, "export", plan.batch, "found") in log


def test_resend_needs_admin_and_the_csrf_token(env: Env) -> None:
    cookie, csrf = env.sign_in("ada")
    number = env.data.quarantined
    forged = env.call("POST", "/uploads/resend", {"csrf": "x", "number": number}, cookie=cookie)
    assert forged.status == 403
    cross = env.call("POST", "/uploads/resend", {"csrf": csrf, "number": number}, cookie=cookie,
                     HTTP_ORIGIN="https://evil.example")  # fmt: skip
    assert cross.status == 403
    assert ("ada (admin, console)", "resend", number, "queued") not in _log(env.data)
    ok = env.call("POST", "/uploads/resend", {"csrf": csrf, "number": number}, cookie=cookie)
    assert ok.status == 200 and "重新排队" in ok.text
    again = env.call("POST", "/uploads/resend", {"csrf": csrf, "number": number}, cookie=cookie)
    assert again.status == 409  # pending now, not quarantined
    log = _log(env.data)
    assert ("ada (admin, console)", "resend", number, "queued") in log
    assert ("ada (admin, console)", "resend", number, "refused") in log


def test_a_removed_user_is_signed_out(env: Env) -> None:
    cookie, _ = env.sign_in("quinn")
    env.app.users.remove("quinn")
    assert env.call("GET", "/", cookie=cookie).status == 303
