"""WSGI requests and answers shared by the resolver and the console: the answer
(:class:`Response`), a refused request (:class:`BadRequest`) and the checked reading of the
path, the query string and a form body. Nothing a client sends reaches a trace: bad input is a
:class:`BadRequest` with a sentence the caller chose."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "HTML",
    "JSON",
    "NO_STORE",
    "STATUS_TEXT",
    "BadRequest",
    "Response",
    "read_body",
    "request_path",
    "request_query",
    "security_headers",
    "status_line",
]

NO_STORE = "no-store"
HTML = "text/html; charset=utf-8"
JSON = "application/json; charset=utf-8"

CONTROL = re.compile(r"[\x00-\x1f\x7f]")

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def security_headers(csp: str) -> tuple[tuple[str, str], ...]:
    """The headers every answer of a saltgw web surface carries, errors included: the page's
    Content-Security-Policy ``csp`` and the same framing, sniffing, referrer, cross-origin and
    permissions rules for all."""
    return (
        ("Content-Security-Policy", csp),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Resource-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    )


def status_line(status: int) -> str:
    return f"{status} {STATUS_TEXT.get(status, '')}".strip()


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    cache: str = NO_STORE
    headers: list[tuple[str, str]] = field(default_factory=list)


class BadRequest(Exception):
    """A request that will not be read: answered with ``status`` and a sentence."""

    def __init__(self, status: int, text: str, allow: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.allow = allow


def request_path(environ: dict[str, Any], texts: dict[str, str] | None = None) -> str:
    """PATH_INFO as text: WSGI hands it over as latin-1 of the raw (percent-decoded) bytes.
    ``texts``: the sentences for ``encoding``, ``control`` and ``long`` refusals."""
    t = {
        "encoding": "请求地址含有无法识别的字符。",
        "control": "请求地址含有控制字符。",
        "long": "请求地址过长。",
        **(texts or {}),
    }
    raw = str(environ.get("PATH_INFO") or "/")
    try:
        path = raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadRequest(400, t["encoding"]) from None
    if CONTROL.search(path):
        raise BadRequest(400, t["control"])
    if len(path) > 256:
        raise BadRequest(400, t["long"])
    return path


def request_query(
    environ: dict[str, Any], *, max_chars: int = 1024, max_fields: int = 16
) -> dict[str, list[str]]:
    """The query string's fields: an ASCII query string whose values are percent-encoded UTF-8
    (a code typed in Chinese reaches the page that says it is not a code, 9.2)."""
    qs = str(environ.get("QUERY_STRING") or "")
    if len(qs) > max_chars:
        raise BadRequest(400, "查询参数过长。")
    try:
        text = qs.encode("latin-1").decode("ascii")
        query = parse_qs(
            text,
            keep_blank_values=True,
            max_num_fields=max_fields,
            errors="strict",
            encoding="utf-8",
        )
    except (UnicodeError, ValueError):
        raise BadRequest(400, "查询参数无法识别。") from None
    for values in query.values():
        if any(CONTROL.search(v) for v in values):
            raise BadRequest(400, "查询参数含有控制字符。")
    return query


def read_body(environ: dict[str, Any], types: tuple[str, ...], limit: int) -> bytes:
    """The request body of one of ``types`` (media types), at most ``limit`` bytes; refused
    (403) when its Origin header names another host than the request's (a cross-site post)."""
    ctype = str(environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
    if ctype not in types:
        raise BadRequest(415, f"请求内容类型应为 {types[0]}。")
    origin = environ.get("HTTP_ORIGIN")
    host = environ.get("HTTP_HOST")
    if origin and host and origin.split("://", 1)[-1] != host:
        raise BadRequest(403, "不接受来自其他网站的提交。")
    length_text = str(environ.get("CONTENT_LENGTH") or "")
    if length_text:
        if not length_text.isdigit():
            raise BadRequest(400, "请求长度无法识别。")
        length = int(length_text)
        if length > limit:
            raise BadRequest(413, "提交的内容过长。")
        return bytes(environ["wsgi.input"].read(length))
    body = bytes(environ["wsgi.input"].read(limit + 1))
    if len(body) > limit:
        raise BadRequest(413, "提交的内容过长。")
    return body
