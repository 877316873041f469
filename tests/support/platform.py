"""A fake national platform: an HTTP server on 127.0.0.1 that answers uploads as
docs/platform-xml.md says, or misbehaves on cue (garbage, 500s, time-outs, going down).

It keeps what it accepted by document number, so a test can tell whether each document arrived
exactly once *as the platform sees it*: a repeat of a known number is answered ``duplicate``
with the original receipt and not stored again.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.net import free_port


@dataclass
class Stored:
    number: str
    xml: bytes
    receipt: str


@dataclass
class FakePlatform:
    port: int = field(default_factory=free_port)
    token: str | None = None
    # behaviours for the next POSTs, in order; then "ok". Each: ok | garbage | 500 | 503 |
    # store_then_garbage (stored, but the reply is lost) | timeout | reject
    script: list[str] = field(default_factory=list)
    timeout_secs: float = 1.5
    stored: dict[str, Stored] = field(default_factory=dict)
    new_count: Counter[str] = field(default_factory=Counter)  # number -> times stored as new
    posts: list[tuple[str, str]] = field(default_factory=list)  # (number, behaviour)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/upload"

    def start(self) -> FakePlatform:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                platform._handle(self)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _next(self) -> str:
        with self._lock:
            return self.script.pop(0) if self.script else "ok"

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(length)
        number = h.headers.get("X-Document-Number", "")
        if self.token is not None and h.headers.get("Authorization") != f"Bearer {self.token}":
            self._reply(h, 401, b'{"error": "bad token"}')
            return
        what = self._next()
        with self._lock:
            self.posts.append((number, what))
        if what == "garbage":
            self._reply(h, 200, b"<html>Service temporarily garbled</html>")
        elif what in ("500", "503"):
            self._reply(h, int(what), b"Internal Server Error")
        elif what == "timeout":
            time.sleep(self.timeout_secs)
            self._reply(h, 504, b"late")
        elif what == "reject":
            msg = {"status": "rejected", "document": number, "reason": "unknown enterprise"}
            self._reply(h, 422, json.dumps(msg).encode())
        else:
            receipt, status = self._store(number, body, h.headers.get("X-Document-Encoding"))
            if what == "store_then_garbage":
                self._reply(h, 200, b'{"status": "ok", "docu')  # the reply is cut off
            else:
                msg = {"status": status, "document": number, "receipt": receipt}
                self._reply(h, 200, json.dumps(msg).encode())

    def _store(self, number: str, body: bytes, encoding: str | None) -> tuple[str, str]:
        xml = gzip.decompress(base64.b64decode(body)) if encoding == "gzip+base64" else body
        with self._lock:
            known = self.stored.get(number)
            if known is not None:
                assert hashlib.sha256(known.xml).digest() == hashlib.sha256(xml).digest(), (
                    f"document {number} sent twice with different content"
                )
                return known.receipt, "duplicate"
            receipt = f"R-{len(self.stored) + 1:05d}"
            self.stored[number] = Stored(number, xml, receipt)
            self.new_count[number] += 1
            return receipt, "ok"
