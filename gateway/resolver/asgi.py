"""The resolver as an ASGI application (served by uvicorn, :mod:`.uvserver`): the same
:class:`~gateway.resolver.app.ResolverApp` answers, on the event loop.

A request is turned into the few WSGI ``environ`` keys the app reads (PATH_INFO as latin-1 of
the percent-decoded raw path, as WSGI has it, so a path that is not UTF-8 is still refused by
the app; QUERY_STRING, REMOTE_ADDR, the headers it asks for) and answered by
:meth:`ResolverApp.respond`: a GET or HEAD in the loop's thread (a lookup is two SQLite
reads of ~30 µs and a query record queued for the writer thread: nothing waits on a disk), a
POST in a worker thread (a complaint is committed with fsync before it is acknowledged; the app
is thread-safe, as it is under waitress's threads).

A body (complaints, feedback) is read before the app sees it, at most ``max_body_bytes``: a
declared Content-Length over it is not read at all (the app answers 413 and the connection is
closed rather than drained), a chunked one is read up to one byte over the limit; the whole body
must arrive within ``body_timeout_secs`` (a client dripping its body is cut off with 408).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from gateway.resolver.app import SECURITY_HEADERS, ResolverApp

__all__ = ["AsgiResolver"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS = {  # the request headers the app reads, by their environ key
    b"x-forwarded-for": "HTTP_X_FORWARDED_FOR",
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
    b"origin": "HTTP_ORIGIN",
    b"host": "HTTP_HOST",
}
_TIMEOUT_BODY = "请求内容发送超时。".encode()


class AsgiResolver:
    """The ASGI callable (HTTP only)."""

    def __init__(self, app: ResolverApp, body_timeout_secs: float) -> None:
        self.app = app
        self.limit = app.cfg.max_body_bytes
        self.body_timeout = body_timeout_secs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs without lifespan events and websockets
            return
        method: str = scope["method"]
        client = scope.get("client")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": unquote_to_bytes(scope["raw_path"]).decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "REMOTE_ADDR": client[0] if client else "",
        }
        for name, value in scope["headers"]:
            key = _HEADERS.get(name)
            if key is not None:
                text = value.decode("latin-1")
                environ[key] = f"{environ[key]}, {text}" if key in environ else text
        unread = False
        if method in ("POST", "PUT", "PATCH"):
            try:
                body, unread = await asyncio.wait_for(
                    self._body(receive, environ.get("CONTENT_LENGTH")), self.body_timeout
                )
            except TimeoutError:
                await _answer(send, 408, _plain(_TIMEOUT_BODY, close=True), _TIMEOUT_BODY)
                return
            environ["wsgi.input"] = io.BytesIO(body)
            # a complaint is committed with fsync before it is acknowledged: not on the loop
            status, headers, out = await asyncio.to_thread(self.app.respond, environ)
        else:
            status, headers, out = self.app.respond(environ)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if unread:  # the rest of a refused body is not drained: the connection ends here
            raw.append((b"connection", b"close"))
        await _answer(send, status, raw, out)

    async def _body(self, receive: Receive, length: str | None) -> tuple[bytes, bool]:
        """(the body, True when part of it was left unread)."""
        if length is not None and length.isdigit() and int(length) > self.limit:
            return b"", True  # the app answers 413 from Content-Length alone
        chunks: list[bytes] = []
        size = 0
        more = True
        while more and size <= self.limit:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False  # disconnected
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        return b"".join(chunks), more


def _plain(body: bytes, close: bool = False) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS),
    ]
    if close:
        headers.append((b"connection", b"close"))
    return headers


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
