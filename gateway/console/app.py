"""The console's WSGI application: sign-in, roles, the access log and the routes
(docs/console.md).

Routes (the least role in brackets; :data:`gateway.console.users.PERMISSIONS`)::

    GET  /login, POST /login, POST /logout     sign-in and sign-out
    GET  /                    [operator] line overview, updated live
    GET  /events              [operator] Server-Sent Events: the overview's data on each change
    GET  /api/line            [operator] the same data as JSON
    GET  /charts              [operator] scan rate, no-read rate, aggregation RFT per shift
    GET  /charts/{kpi}.svg    [operator] one chart (server-side SVG)
    GET  /ccp?batch=          [operator] CCP verdicts over time against their limits, per kind
    GET  /ccp/{kind}.svg      [operator] one CCP chart (server-side SVG, from the trace store)
    GET  /uploads             [operator] upload completeness per batch, document states
    POST /uploads/resend      [admin]    queue a quarantined document again
    GET  /trace?code=         [quality]  a code: batch, case, pallet, CCP, outbound
    GET  /recall?batch=       [quality]  a batch: codes and customers
    GET  /recall.csv?batch=   [quality]  the recall as CSV (rows as ``saltgw trace --batch``)
    GET  /access              [admin]    the newest access-log rows
    GET  /users               [admin]    the users and their roles
    GET  /healthz, /static/…

Every trace, recall, export and resend, every refused action and every sign-in is written to the
trace store's access log (QB/T 5279-2018 11.4, 10.5) before the answer is sent. POSTs carry the
session's CSRF token and are refused from another origin; the session cookie is HttpOnly and
SameSite=Strict. Nothing a client sends reaches a trace in an answer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.cookies import CookieError, SimpleCookie
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote

from gateway.console.charts import ccp_value_chart, ccp_verdict_chart, rate_chart
from gateway.console.config import ConsoleSection
from gateway.console.live import LineState
from gateway.console.pages import Pages
from gateway.console.records import CCP_KINDS, CannotResend, ConsoleStore, NoStore
from gateway.console.sessions import COOKIE, Session, Sessions, Throttle
from gateway.console.users import (
    PERMISSIONS,
    ROLES,
    UsersError,
    UsersFile,
    allowed,
    verify_password,
)
from gateway.web.wsgi import (
    JSON,
    BadRequest,
    Response,
    read_body,
    request_path,
    request_query,
    security_headers,
    status_line,
)

__all__ = ["SECURITY_HEADERS", "ConsoleApp"]

log = logging.getLogger(__name__)

SECURITY_HEADERS = security_headers(
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC = {
    "/static/console.css": ("static/console.css", "text/css; charset=utf-8"),
    "/static/console.js": ("static/console.js", "text/javascript; charset=utf-8"),
}
CHARTS = {  # name → (sample field, title, threshold drawn, high is bad)
    "scan-rate": ("window_scan_rate", "扫码率（实时窗口）", True, False),
    "shift-scan-rate": ("shift_scan_rate", "扫码率（本班累计）", True, False),
    "noread-rate": ("shift_noread_rate", "未读率（本班累计）", False, True),
    "aggregation-rft": ("shift_aggregation_rft", "关联一次成功率（本班累计）", False, False),
}
CCP_POINTS = 2000  # records drawn per CCP chart (the newest)
MAX_FORM_BYTES = 4096
KEEPALIVE_SECS = 15.0
STREAM_SECS = 300.0  # a stream ends after this; the browser reconnects (and the session is
# checked again)
PUSH_GAP_SECS = 0.2  # at most five pushes a second per stream
CODE_MAX = 64


class Forbidden(Exception):
    def __init__(self, action: str) -> None:
        super().__init__(action)
        self.action = action


class ConsoleApp:
    def __init__(
        self,
        cfg: ConsoleSection,
        state: LineState,
        store: ConsoleStore,
        users: UsersFile,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.state = state
        self.store = store
        self.users = users
        self.clock = clock
        self.sessions = Sessions(cfg.session_secs, clock)
        self.throttle = Throttle(clock)
        self.pages = Pages(cfg.tz())
        self.tz = cfg.tz()
        self.streams = threading.BoundedSemaphore(cfg.max_streams)
        self.stopping = threading.Event()
        pkg = files("gateway.console")
        self.static = {
            path: (pkg.joinpath(name).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()
        }

    # -- WSGI ------------------------------------------------------------------------------------
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        try:
            path = request_path(environ)
            if path == "/events":
                _methods(method, "GET")
                stream = self._events(environ)
                if not isinstance(stream, Response):
                    start_response(status_line(200), self._headers(_sse_response()))
                    return stream
                resp = stream
            else:
                resp = self._handle(environ, method, path)
        except BadRequest as exc:
            resp = self._message(exc.status, "请求无效", exc.text)
            if exc.allow:
                resp.headers.append(("Allow", exc.allow))
        except Exception:  # never a trace or an internal detail in an answer
            log.exception(
                "console: unexpected error answering %s %r", method, environ.get("PATH_INFO")
            )
            resp = self._message(500, "出错了", "控制台内部错误，已记录日志。")
        start_response(status_line(resp.status), self._headers(resp))
        return [b""] if method == "HEAD" else [resp.body]

    @staticmethod
    def _headers(resp: Response) -> list[tuple[str, str]]:
        return [
            ("Content-Type", resp.content_type),
            *([] if resp.content_type.startswith("text/event-stream") else
              [("Content-Length", str(len(resp.body)))]),
            ("Cache-Control", resp.cache),
            *SECURITY_HEADERS,
            *resp.headers,
        ]  # fmt: skip

    # -- sessions ----------------------------------------------------------------------------------
    def _session(self, environ: dict[str, Any]) -> Session | None:
        raw = str(environ.get("HTTP_COOKIE") or "")
        try:
            jar = SimpleCookie(raw)
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        s = self.sessions.get(morsel.value if morsel is not None else None)
        if s is None:
            return None
        user = self._users().get(s.user)
        if user is None or user.role != s.role:  # removed, or the role changed: sign in again
            self.sessions.close_user(s.user)
            return None
        return s

    def _users(self) -> dict[str, Any]:
        try:
            return self.users.load()
        except UsersError as exc:
            log.error("console: %s", exc)
            return {}

    def _cookie(self, value: str, max_age: int) -> tuple[str, str]:
        secure = "; Secure" if self.cfg.secure_cookies else ""
        return (
            "Set-Cookie",
            f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        )

    @staticmethod
    def _client(environ: dict[str, Any]) -> str:
        return str(environ.get("REMOTE_ADDR") or "?")[:64]

    @staticmethod
    def _who(s: Session) -> str:
        return f"{s.user} ({s.role}, console)"

    def _audit(
        self, environ: dict[str, Any], s: Session | None, query: str, subject: str | None,
        outcome: str, user: str | None = None,
    ) -> None:  # fmt: skip
        who = self._who(s) if s is not None else f"{user or '?'} (console)"
        try:
            self.store.audit(query, subject, outcome, who, self._client(environ))
        except NoStore:
            log.info("console: %s %r by %s: %s (no trace store to log it in)", query, subject,
                     who, outcome)  # fmt: skip

    def _require(
        self, environ: dict[str, Any], s: Session, action: str, subject: str | None
    ) -> None:
        if not allowed(s.role, action):
            self._audit(environ, s, action, subject, "forbidden")
            raise Forbidden(action)

    # -- routing -----------------------------------------------------------------------------------
    def _handle(self, environ: dict[str, Any], method: str, path: str) -> Response:
        if path in self.static:
            _methods(method, "GET, HEAD")
            body, ctype = self.static[path]
            return Response(200, body, ctype, "public, max-age=3600")
        if path == "/healthz":
            _methods(method, "GET, HEAD")
            health = {"status": "ok", "broker": self.state.snapshot()["broker"]}
            return Response(200, _json(health), JSON)
        if path == "/login":
            _methods(method, "GET, HEAD, POST")
            if method == "POST":
                return self._login(environ)
            return self._login_page(200, None, "", _one(request_query(environ), "next"))
        s = self._session(environ)
        if s is None:
            if path.startswith("/api/") or path.endswith((".csv", ".svg")):
                return Response(401, _json({"error": "sign in first"}), JSON)
            target = quote(path, safe="/")
            return Response(303, b"", headers=[("Location", f"/login?next={target}")])
        query = request_query(environ)
        try:
            return self._route(environ, method, path, s, query)
        except Forbidden as exc:
            need = PERMISSIONS[exc.action]
            return self._message(
                403,
                "无权限",
                f"“{exc.action}” 需要 {need} 或更高角色；您的角色是 {s.role}。",
                s,
            )

    def _route(
        self, environ: dict[str, Any], method: str, path: str, s: Session,
        query: dict[str, list[str]],
    ) -> Response:  # fmt: skip
        if path == "/logout":
            _methods(method, "POST")
            self._form(environ, s)
            self.sessions.close(s.token)
            return Response(303, b"", headers=[("Location", "/login"), self._cookie("", 0)])
        if method == "POST":
            form = self._form(environ, s)
            if path == "/uploads/resend":
                return self._resend(environ, s, form)
            raise BadRequest(405, "不支持该请求方法。", "GET, HEAD")
        _methods(method, "GET, HEAD")
        self._require(environ, s, "view", None)
        if path == "/":
            return self._page("overview", s, line=self.state.snapshot())
        if path == "/api/line":
            return Response(200, _json(self.state.snapshot()), JSON)
        if path == "/charts":
            shifts = self.state.shifts()
            shift = _one(query, "shift") or (shifts[-1] if shifts else "")
            return self._page("charts", s, shifts=shifts, shift=shift, charts=CHARTS,
                              kpi_version=self.state.kpi_version)  # fmt: skip
        if path.startswith("/charts/") and path.endswith(".svg"):
            return self._chart(path[len("/charts/") : -4], _one(query, "shift"))
        if path == "/ccp":
            return self._ccp_page(s, _one(query, "batch"))
        if path.startswith("/ccp/") and path.endswith(".svg"):
            return self._ccp_chart(path[len("/ccp/") : -4], _one(query, "batch"))
        if path == "/uploads":
            return self._uploads(s, None)
        if path == "/trace":
            return self._trace(environ, s, _one(query, "code"))
        if path == "/recall":
            return self._recall(environ, s, _one(query, "batch"))
        if path == "/recall.csv":
            return self._export(environ, s, _one(query, "batch"))
        if path == "/access":
            self._require(environ, s, "users", None)
            return self._page("access", s, rows=self.store.access_rows(100))
        if path == "/users":
            self._require(environ, s, "users", None)
            users = sorted(self._users().values(), key=lambda u: u.name)
            return self._page("users", s, users=users, roles=ROLES, permissions=PERMISSIONS)
        raise BadRequest(404, "页面不存在。")

    # -- sign-in -----------------------------------------------------------------------------------
    def _login(self, environ: dict[str, Any]) -> Response:
        form = _parse_form(
            read_body(environ, ("application/x-www-form-urlencoded",), MAX_FORM_BYTES)
        )
        name = form.get("name", "")[:64]
        password = form.get("password", "")[:1024]
        client = self._client(environ)
        keys = (f"user:{name}", f"client:{client}")
        if self.throttle.blocked(*keys):
            self._audit(environ, None, "signin", name, "throttled", user=name)
            return self._login_page(429, "登录失败次数过多，请稍后再试。", name, form.get("next"))
        user = self._users().get(name)
        if user is None or not verify_password(password, user.password):
            self.throttle.failed(*keys)
            self._audit(environ, None, "signin", name, "refused", user=name)
            return self._login_page(401, "用户名或密码错误。", name, form.get("next"))
        self.throttle.succeeded(*keys)
        s = self.sessions.open(user.name, user.role)
        self._audit(environ, s, "signin", name, "done")
        return Response(303, b"", headers=[
            ("Location", _local(form.get("next"))),
            self._cookie(s.token, int(self.cfg.session_secs)),
        ])  # fmt: skip

    def _login_page(self, status: int, note: str | None, name: str, nxt: str | None) -> Response:
        body = self.pages.render("login", session=None, can=lambda a: False, note=note,
                                 name=name, next=_local(nxt))  # fmt: skip
        return Response(status, body)

    def _form(self, environ: dict[str, Any], s: Session) -> dict[str, str]:
        body = read_body(environ, ("application/x-www-form-urlencoded",), MAX_FORM_BYTES)
        form = _parse_form(body)
        if not s.csrf_ok(form.get("csrf")):
            raise BadRequest(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试。")
        return form

    # -- pages -------------------------------------------------------------------------------------
    def _page(self, name: str, s: Session, status: int = 200, **ctx: Any) -> Response:
        body = self.pages.render(name, session=s, can=lambda a: allowed(s.role, a), **ctx)
        return Response(status, body)

    def _message(self, status: int, title: str, text: str, s: Session | None = None) -> Response:
        if s is None:
            return Response(status, self.pages.render("message", session=None, can=lambda a: False,
                                                      title=title, text=text))  # fmt: skip
        return self._page("message", s, status, title=title, text=text)

    def _chart(self, name: str, shift: str | None) -> Response:
        if name not in CHARTS:
            raise BadRequest(404, "没有这个图表。")
        field, title, with_threshold, high_is_bad = CHARTS[name]
        samples = self.state.samples(shift or None)
        threshold = samples[-1].threshold if samples and with_threshold else None
        points = [(x.at, getattr(x, field)) for x in samples]
        label = f"{title} · 班次 {shift}" if shift else title
        svg = rate_chart(points, title=label, threshold=threshold, tz=self.tz,
                         high_is_bad=high_is_bad)  # fmt: skip
        return _svg(svg)

    def _ccp_page(self, s: Session, batch: str | None) -> Response:
        batch = _subject(batch) if batch else None
        summary = self._read(lambda: self.store.ccp_summary(batch))
        batches = self._read(self.store.ccp_batches)
        return self._page("ccp", s, batch=batch or "", batches=batches, kinds=CCP_KINDS,
                          summary=summary, ccp_version=self.state.ccp_version,
                          most=CCP_POINTS)  # fmt: skip

    def _ccp_chart(self, kind: str, batch: str | None) -> Response:
        if kind not in CCP_KINDS:
            raise BadRequest(404, "没有这个图表。")
        batch = _subject(batch) if batch else None
        points = self._read(lambda: self.store.ccp_series(kind, batch, CCP_POINTS))
        title, yes_no = CCP_KINDS[kind]
        title = f"{title} · 批次 {batch}" if batch else title
        if yes_no:
            return _svg(ccp_verdict_chart(points, title=title, tz=self.tz))
        unit = self._read(lambda: self.store.ccp_summary(batch)).get(kind, {}).get("unit")
        return _svg(ccp_value_chart(points, title=title, unit=unit, tz=self.tz))

    def _trace(self, environ: dict[str, Any], s: Session, code: str | None) -> Response:
        if not code:
            self._require(environ, s, "trace", None)
            return self._page("trace", s, code="", found=None, asked=False)
        code = _subject(code)
        self._require(environ, s, "trace", code)
        found = self._read(lambda: self.store.code(code))
        self._audit(environ, s, "code", code, "found" if found else "not found")
        return self._page("trace", s, 200 if found else 404, code=code, found=found, asked=True)

    def _recall(self, environ: dict[str, Any], s: Session, batch: str | None) -> Response:
        if not batch:
            self._require(environ, s, "recall", None)
            return self._page("recall", s, batch="", found=None, asked=False, customers=[])
        batch = _subject(batch)
        self._require(environ, s, "recall", batch)
        found = self._read(lambda: self.store.batch(batch))
        self._audit(environ, s, "batch", batch, "found" if found else "not found")
        customers = self.store.customers(found[1]) if found else []
        return self._page("recall", s, 200 if found else 404, batch=batch, found=found,
                          asked=True, customers=customers)  # fmt: skip

    def _export(self, environ: dict[str, Any], s: Session, batch: str | None) -> Response:
        if not batch:
            raise BadRequest(400, "请给出批号（batch）。")
        batch = _subject(batch)
        self._require(environ, s, "export", batch)
        body = self._read(lambda: self.store.recall_csv(batch))
        self._audit(environ, s, "export", batch, "found" if body else "not found")
        if body is None:
            return self._message(404, "没有这个批次", f"追溯库中没有批次 {batch}。", s)
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in batch)
        return Response(200, body, "text/csv; charset=utf-8", headers=[
            ("Content-Disposition", f'attachment; filename="recall-{name}.csv"')])  # fmt: skip

    def _uploads(self, s: Session, note: str | None, status: int = 200) -> Response:
        batches = self._read(self.store.completeness)
        quarantined = self._read(lambda: self.store.documents("quarantined"))
        return self._page("uploads", s, status, batches=batches, quarantined=quarantined,
                          note=note)  # fmt: skip

    def _resend(self, environ: dict[str, Any], s: Session, form: dict[str, str]) -> Response:
        number = _subject(form.get("number", ""))
        self._require(environ, s, "resend", number)
        try:
            self.store.resend(number, self._who(s))
        except CannotResend as exc:
            self._audit(environ, s, "resend", number, "refused")
            return self._uploads(s, f"未能重发：{exc}", 409)
        self._audit(environ, s, "resend", number, "queued")
        return self._uploads(s, f"文件 {number} 已重新排队，桥接服务下一轮发送。")

    def _read(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except NoStore as exc:
            raise BadRequest(503, f"{exc}") from None
        except sqlite3.OperationalError as exc:  # locked too long, or a PostgreSQL store lost
            log.warning("console: reading the trace store failed: %s", exc)
            raise BadRequest(503, f"the trace store could not be read now: {exc}") from None

    # -- live --------------------------------------------------------------------------------------
    def _events(self, environ: dict[str, Any]) -> Iterator[bytes] | Response:
        """The SSE stream, or the answer why not (not signed in; too many streams: the
        browser retries)."""
        s = self._session(environ)
        if s is None or not allowed(s.role, "view"):
            return Response(401, _json({"error": "sign in first"}), JSON)
        if not self.streams.acquire(blocking=False):
            return Response(503, _json({"error": "too many live streams"}), JSON,
                            headers=[("Retry-After", "5")])  # fmt: skip
        return self._stream(s)

    def _stream(self, s: Session) -> Iterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            seen = -1
            end = time.monotonic() + STREAM_SECS
            last_push = 0.0
            while not self.stopping.is_set() and time.monotonic() < end and time.time() < s.expires:
                version = self.state.wait(seen, 1.0)
                if version == seen:
                    if time.monotonic() - last_push >= KEEPALIVE_SECS:
                        last_push = time.monotonic()
                        yield b": keep-alive\n\n"
                    continue
                gap = PUSH_GAP_SECS - (time.monotonic() - last_push)
                if gap > 0:
                    time.sleep(gap)
                snap = self.state.snapshot()
                seen = snap["version"]
                last_push = time.monotonic()
                yield b"event: line\ndata: " + _json(snap) + b"\n\n"
        finally:
            self.streams.release()


def _svg(svg: str) -> Response:
    return Response(200, svg.encode("utf-8"), "image/svg+xml; charset=utf-8")


def _sse_response() -> Response:
    return Response(200, b"", "text/event-stream; charset=utf-8", "no-store",
                    [("X-Accel-Buffering", "no")])  # fmt: skip


def _methods(method: str, allow: str) -> None:
    if method not in allow.split(", "):
        raise BadRequest(405, "不支持该请求方法。", allow)


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16,
                          errors="strict")  # fmt: skip
    except (UnicodeError, ValueError):
        raise BadRequest(400, "提交的内容无法识别。") from None
    return {k: v[0] for k, v in fields.items()}


def _local(nxt: str | None) -> str:
    """Where to go after signing in: a path of this console only (never another site)."""
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return "/"
    return nxt if len(nxt) <= 256 and not any(c.isspace() for c in nxt) else "/"


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0].strip() if values else None


def _subject(text: str) -> str:
    text = text.strip()
    if not text or len(text) > CODE_MAX or any(c.isspace() for c in text):
        raise BadRequest(400, f"编码或批号应为 1 到 {CODE_MAX} 个非空白字符。")
    return text


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
