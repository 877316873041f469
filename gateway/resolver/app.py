"""The WSGI application: routes, request checks, security headers, errors (docs/resolver.md).

Routes (contract: shared/design/contract.md, Resolver)::

    GET  /                     the input form
    GET  /q/{code}             the consumer's page for a scanned QR (channel scan)
    GET  /q?c={code}           the older query form of scanners' URLs (c, code, id, tc; scan)
    GET  /check?code={code}    the form's lookup of a typed code (channel typed)
    GET  /api/v1/codes/{code}  JSON (channel api); 404 with the same shape for an unknown code
    POST /feedback             "does the bag match the page?" (form); /api/v1/feedback (JSON)
    GET  /complaint            the complaint form; POST /complaint, POST /api/v1/complaints
    GET  /healthz              snapshot age and codes (503 until a snapshot is published)
    GET  /static/resolver.css, /robots.txt

Every answer, errors included, carries the security headers of :data:`SECURITY_HEADERS` and a
Cache-Control fit for its route; nothing a client sends reaches a stack trace or an internal
detail in an answer (an unexpected error is logged and answered with a plain 500 page).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

from gateway.resolver.clients import ClientResolver, place_of
from gateway.resolver.config import Channel, ResolverSection
from gateway.resolver.pages import Pages, answer_body
from gateway.resolver.querylog import Complaint, new_id
from gateway.resolver.ratelimit import RateLimiter
from gateway.resolver.verdict import Answer, NoSnapshot, Resolver, acceptable, normalise
from gateway.web.wsgi import (
    HTML,
    JSON,
    NO_STORE,
    STATUS_TEXT,
    BadRequest,
    Response,
    read_body,
    request_path,
    request_query,
    security_headers,
    status_line,
)

__all__ = ["HTML", "NO_STORE", "SECURITY_HEADERS", "ResolverApp"]

log = logging.getLogger(__name__)

SECURITY_HEADERS = security_headers(
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
STATIC_CACHE = "public, max-age=86400"
ROBOTS = b"User-agent: *\nDisallow: /q\nDisallow: /check\nDisallow: /api/\n"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    environ: dict[str, Any]
    client: str

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


class ResolverApp:
    """The WSGI callable."""

    def __init__(
        self,
        cfg: ResolverSection,
        resolver: Resolver,
        pages: Pages,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.resolver = resolver
        self.pages = pages
        if limiter is None:
            rl = cfg.rate_limit
            limiter = RateLimiter(rl.per_second, rl.burst, rl.max_clients)
        self.limiter = limiter
        self.clients = ClientResolver(cfg.trusted_proxies)
        self.clock = clock
        self.tz = cfg.tz()
        self.static = {
            "/static/resolver.css": (
                files("gateway.resolver").joinpath("static/resolver.css").read_bytes(),
                "text/css; charset=utf-8",
            ),
            "/robots.txt": (ROBOTS, "text/plain; charset=utf-8"),
        }
        self.scan_keys = tuple(cfg.codes.query_keys)
        self._checked: tuple[int, str] = (-1, "")

    # -- WSGI ------------------------------------------------------------------------------------
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        status, headers, body = self.respond(environ)
        start_response(status_line(status), headers)
        return [body]

    def respond(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """The answer to one request described by a WSGI ``environ`` (the ASGI front,
        :mod:`.asgi`, builds one too): status, headers, body (empty for HEAD; Content-Length
        is the GET body's)."""
        method = str(environ.get("REQUEST_METHOD", "GET"))
        is_api = str(environ.get("PATH_INFO", "")).startswith("/api/")
        try:
            resp = self._handle(environ, method)
        except BadRequest as exc:
            resp = self._error(exc.status, exc.text, is_api)
            if exc.allow:
                resp.headers.append(("Allow", exc.allow))
        except Exception:  # never a trace or an internal detail in an answer
            log.exception(
                "resolver: unexpected error answering %s %r", method, environ.get("PATH_INFO")
            )
            resp = self._error(500, "服务暂时出现问题，请稍后再试。", is_api)
        headers = [
            ("Content-Type", resp.content_type),
            ("Content-Length", str(len(resp.body))),
            ("Cache-Control", resp.cache),
            *SECURITY_HEADERS,
            *resp.headers,
        ]
        return resp.status, headers, b"" if method == "HEAD" else resp.body

    def _handle(self, environ: dict[str, Any], method: str) -> Response:
        path = request_path(environ)
        if path in self.static:
            self._methods(method, "GET, HEAD")
            body, ctype = self.static[path]
            return Response(200, body, ctype, STATIC_CACHE)
        if path == "/healthz":
            self._methods(method, "GET, HEAD")
            return self._health()
        peer = str(environ.get("REMOTE_ADDR") or "")
        client = self.clients.client(peer, environ.get("HTTP_X_FORWARDED_FOR"))
        wait = self.limiter.take(client)
        if wait:
            resp = self._error(429, "查询过于频繁，请稍后再试。", path.startswith("/api/"))
            resp.headers.append(("Retry-After", str(RateLimiter.retry_after(wait))))
            return resp
        req = Request(method, path, request_query(environ), environ, client)
        return self._route(req)

    @staticmethod
    def _methods(method: str, allow: str) -> None:
        if method not in allow.split(", "):
            raise BadRequest(405, "不支持该请求方法。", allow)

    def _route(self, req: Request) -> Response:
        path = req.path
        if path == "/":
            self._methods(req.method, "GET, HEAD")
            return Response(200, self.pages.render("index", note=None, value=""))
        if path.startswith("/q/"):
            self._methods(req.method, "GET, HEAD")
            return self._page(req, path[3:], "scan")
        if path == "/q":
            self._methods(req.method, "GET, HEAD")
            for key in self.scan_keys:
                if key in req.query:
                    return self._page(req, req.query[key][0], "scan")
            return self._form(400, "请输入追溯编码。")
        if path == "/check":
            self._methods(req.method, "GET, HEAD")
            return self._page(req, (req.query.get("code") or [""])[0], "typed")
        if path.startswith("/api/v1/codes/"):
            self._methods(req.method, "GET, HEAD")
            return self._api_code(req, path[len("/api/v1/codes/") :])
        if path == "/feedback":
            self._methods(req.method, "POST")
            return self._feedback(req, self._form_body(req), api=False)
        if path == "/api/v1/feedback":
            self._methods(req.method, "POST")
            return self._feedback(req, self._json_body(req), api=True)
        if path == "/complaint":
            self._methods(req.method, "GET, HEAD, POST")
            if req.method == "POST":
                return self._complaint(req, self._form_body(req), api=False)
            code = (req.query.get("code") or [""])[0]
            form = {
                "code": code if acceptable(code) else "",
                "place": "",
                "content": "",
                "contact": "",
            }
            return Response(200, self.pages.render("complaint", form=form, errors=[]))
        if path == "/api/v1/complaints":
            self._methods(req.method, "POST")
            return self._complaint(req, self._json_body(req), api=True)
        raise BadRequest(404, "页面不存在。")

    # -- lookups ---------------------------------------------------------------------------------
    def _answer(self, req: Request, raw: str, channel: Channel) -> Answer | None:
        code = normalise(raw, channel)
        if not acceptable(code):
            return None
        try:
            return self.resolver.resolve(
                code, channel, place_of(req.client), count=req.method != "HEAD"
            )
        except NoSnapshot:
            raise BadRequest(
                503, "查询服务正在准备数据（尚未发布公开信息），请稍后再试。"
            ) from None

    def _page(self, req: Request, raw: str, channel: Channel) -> Response:
        if not raw.strip():
            return self._form(400, "请输入追溯编码。")
        answer = self._answer(req, raw, channel)
        if answer is None:
            return self._form(
                400,
                "追溯编码无效：编码由 4 位企业代码和不超过 20 位的企业内部"
                "编码组成，只含字母和数字。",
            )
        checked = self._minute(self.clock())
        status = 404 if answer.verdict == "unknown" else 200
        return Response(status, self.pages.code(answer, checked))

    def _minute(self, now: float) -> str:
        """``now`` as the page shows it (YYYY-MM-DD HH:MM, resolver.timezone), formatted once a
        minute."""
        minute = int(now // 60)
        cached = self._checked
        if cached[0] != minute:
            text = datetime.fromtimestamp(minute * 60, self.tz).strftime("%Y-%m-%d %H:%M")
            self._checked = cached = (minute, text)
        return cached[1]

    def _api_code(self, req: Request, raw: str) -> Response:
        answer = self._answer(req, raw, "api")
        if answer is None:
            body: dict[str, Any] = {
                "code": None,
                "verdict": "unknown",
                "reason": "bad_request",
                "message": "编码无效",
                "public": {},
            }
            return Response(400, _json(body), JSON)
        status = 404 if answer.verdict == "unknown" else 200
        return Response(status, answer_body(answer), JSON)

    # -- consumers' input ------------------------------------------------------------------------
    def _body(self, req: Request, types: tuple[str, ...]) -> bytes:
        return read_body(req.environ, types, self.cfg.max_body_bytes)

    def _form_body(self, req: Request) -> dict[str, str]:
        body = self._body(req, ("application/x-www-form-urlencoded",))
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, max_num_fields=16, errors="strict"
            )
        except (UnicodeError, ValueError):
            raise BadRequest(400, "提交的内容无法识别。") from None
        return {k: v[0] for k, v in fields.items()}

    def _json_body(self, req: Request) -> dict[str, Any]:
        body = self._body(req, ("application/json",))
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeError, ValueError, RecursionError):
            raise BadRequest(400, "提交的 JSON 无法识别。") from None
        if not isinstance(value, dict):
            raise BadRequest(400, "提交的 JSON 应为一个对象。")
        return value

    def _feedback(self, req: Request, data: dict[str, Any], api: bool) -> Response:
        qid = data.get("query_id" if api else "qid")
        matches: Any = data.get("matches")
        if not api:
            matches = {"yes": True, "no": False}.get(str(matches))
        comment = data.get("comment")
        if (
            not isinstance(qid, str)
            or len(qid) != 22
            or not acceptable(qid)
            or not isinstance(matches, bool)
            or (comment is not None and (not isinstance(comment, str) or len(comment) > 500))
        ):
            raise BadRequest(400, "反馈内容无效。")
        self.resolver.log.feedback(qid, matches, comment or None)
        if api:
            return Response(201, _json({"query_id": qid, "matches": matches}), JSON)
        text = "感谢您的反馈。" + (
            "" if matches else f"如有疑问，可提交投诉或拨打 {self.cfg.hotline}。"
        )
        return Response(200, self.pages.message(200, "已收到反馈", text))

    def _complaint(self, req: Request, data: dict[str, Any], api: bool) -> Response:
        limits = {"code": 64, "place": 200, "content": 2000, "contact": 100}
        form: dict[str, str] = {}
        errors: list[str] = []
        for key, most in limits.items():
            value = data.get(key)
            if value is None:
                value = ""
            if not isinstance(value, str):
                errors.append(f"{key}: 应为文本")
                value = ""
            value = value.strip()
            if len(value) > most:
                errors.append(f"{key}: 不能超过 {most} 个字符")
            if any(ord(c) < 0x20 and c not in "\n\r\t" for c in value):
                errors.append(f"{key}: 含有控制字符")
            form[key] = value[:most]
        if not form["place"]:
            errors.append("请填写地点")
        if not form["content"]:
            errors.append("请填写投诉内容")
        if form["code"] and not acceptable(form["code"]):
            errors.append("追溯编码无效")
        if errors:
            if api:
                return Response(400, _json({"errors": errors}), JSON)
            return Response(400, self.pages.render("complaint", form=form, errors=errors))
        cid = new_id()
        now_ms = int(self.clock() * 1000)
        self.resolver.log.complain(
            Complaint(
                cid,
                now_ms,
                form["code"] or None,
                form["place"],
                form["content"],
                form["contact"] or None,
                "api" if api else "form",
                place_of(req.client),
            )
        )
        if api:
            received = datetime.fromtimestamp(now_ms / 1000, UTC).isoformat(timespec="seconds")
            return Response(201, _json({"id": cid, "received": received}), JSON)
        return Response(
            200,
            self.pages.message(
                200, "投诉已提交", f"我们已收到您的投诉（编号 {cid[:8]}），将尽快处理。"
            ),
        )

    # -- the rest --------------------------------------------------------------------------------
    def _health(self) -> Response:
        snap = self.resolver.snapshots.current
        if snap is None:
            return Response(503, _json({"status": "no_snapshot"}), JSON)
        now = self.clock()
        try:
            age: float | None = round(now - datetime.fromisoformat(snap.built_at).timestamp(), 1)
        except ValueError:
            age = None
        body = {
            "status": "ok",
            "snapshot": {
                "built_at": snap.built_at,
                "age_secs": age,
                "loaded_secs": round(now - snap.loaded_at, 1),
                "codes": snap.codes,
            },
        }
        return Response(200, _json(body), JSON)

    def _form(self, status: int, note: str) -> Response:
        return Response(status, self.pages.render("index", note=note, value=""))

    def _error(self, status: int, text: str, api: bool) -> Response:
        if api:
            return Response(
                status, _json({"error": STATUS_TEXT.get(status, ""), "message": text}), JSON
            )
        title = {404: "页面不存在", 429: "查询过于频繁", 503: "暂时无法查询"}.get(
            status, "请求无效"
        )
        if status >= 500 and status != 503:
            title = "服务暂时出现问题"
        return Response(status, self.pages.message(status, title, text))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
