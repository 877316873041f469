"""A small HTTP/1.x server whose threads and connections are bounded, whatever clients do
(issue 15: 300 idle connections to the stdlib ``ThreadingHTTPServer`` made 300 threads).

One selector thread accepts connections and reads their request heads; a connection whose
head is complete goes to a fixed pool of ``workers`` threads, which answer it and close it
(``Connection: close``: one request per connection). So the threads are 1 + ``workers``,
never more:

- at most ``max_connections`` are open at once; when a new one arrives at the cap, the oldest
  connection still sending its request is closed to make room (an idle or slow client cannot
  lock out a real one that sends its request at once), and if every open connection is being
  answered the new one is closed at once;
- a connection must deliver its request head within ``timeout`` seconds of being accepted
  (idle and byte-by-byte clients are cut), and the answer must be taken within ``timeout``;
- a head longer than ``max_head_bytes`` is answered 431 and closed.

Each outcome is counted in :class:`HttpCounters` (``saltgw_http_connections_total``).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["BoundedHttpServer", "HttpCounters", "Request", "Response"]

log = logging.getLogger(__name__)

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed request head: method, path (without the query), lower-cased headers, and the
    peer's IP address."""

    method: str
    path: str
    headers: dict[str, str]
    peer: str


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class HttpCounters:
    """Connections by outcome since the server started."""

    OUTCOMES = ("answered", "evicted", "refused", "timed_out", "bad_request", "closed_by_client")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.OUTCOMES, 0)

    def add(self, outcome: str) -> None:
        with self._lock:
            self.counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    peer: str
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    answering: bool = False


def _parse(head: bytes, peer: str) -> Request | None:
    try:
        text = head.decode("latin-1")
        first, *lines = text.split("\r\n")
        method, target, version = first.split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return Request(method, target.split("?", 1)[0], headers, peer)


def _render(resp: Response, head_only: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Status')}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        "Connection: close",
        "Cache-Control: no-store",
        *(f"{k}: {v}" for k, v in resp.headers.items()),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


class BoundedHttpServer:
    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        max_connections: int = 32,
        workers: int = 4,
        timeout: float = 5.0,
        max_head_bytes: int = 8192,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler = handler
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_head_bytes = max_head_bytes
        self.counters = HttpCounters()
        self._clock = clock
        family, _, _, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        self._listen = socket.create_server(addr[:2], family=family, backlog=64)
        self._listen.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listen, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._conns: dict[int, _Conn] = {}  # by fileno, in arrival order
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listen.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._conns.values():
                conn.sock.close()
            self._conns.clear()
        self._sel.close()
        for s in (self._listen, self._wake_r, self._wake_w):
            s.close()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    # -- the selector thread ------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                events = self._sel.select(timeout=0.25)
                for key, _ in events:
                    if key.fileobj is self._listen:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(64)
                    else:
                        self._read(key.fileobj)  # type: ignore[arg-type]
                self._expire()
            except Exception:  # nothing a client does may stop the server
                log.exception("http: unexpected error in the connection loop")

    def _accept(self) -> None:
        while True:
            try:
                sock, addr = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: try again on the next event
                log.warning("http: cannot accept a connection: %s", exc)
                return
            sock.setblocking(False)
            with self._lock:
                if len(self._conns) >= self.max_connections and not self._evict_oldest():
                    self.counters.add("refused")
                    sock.close()
                    continue
                conn = _Conn(sock, str(addr[0]), self._clock() + self.timeout)
                self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ)

    def _evict_oldest(self) -> bool:
        """Close the oldest connection still sending its request (lock held)."""
        for fd, conn in self._conns.items():
            if not conn.answering:
                self._drop(fd, conn, "evicted")
                return True
        return False

    def _drop(self, fd: int, conn: _Conn, outcome: str) -> None:
        """Forget and close a connection the selector reads (lock held)."""
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        self._conns.pop(fd, None)
        conn.sock.close()
        self.counters.add(outcome)

    def _read(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        with self._lock:
            conn = self._conns.get(fd)
            if conn is None or conn.answering:
                return
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._drop(fd, conn, "closed_by_client")
                return
            conn.buf += data
            end = conn.buf.find(b"\r\n\r\n")
            if end < 0 and len(conn.buf) <= self.max_head_bytes:
                return
            conn.answering = True
            self._sel.unregister(sock)
        head = bytes(conn.buf[:end]) if end >= 0 else None
        self._pool.submit(self._answer, fd, conn, head)

    def _expire(self) -> None:
        now = self._clock()
        with self._lock:
            late = [
                (fd, c) for fd, c in self._conns.items() if not c.answering and now > c.deadline
            ]
            for fd, conn in late:
                self._drop(fd, conn, "timed_out")

    # -- the workers ----------------------------------------------------------------------------
    def _answer(self, fd: int, conn: _Conn, head: bytes | None) -> None:
        outcome = "answered"
        head_only = False
        try:
            if head is None:
                outcome = "bad_request"
                resp = Response(431, "text/plain", b"request head too long\n")
            elif (req := _parse(head, conn.peer)) is None:
                outcome = "bad_request"
                resp = Response(400, "text/plain", b"bad request\n")
            elif req.method not in ("GET", "HEAD"):
                resp = Response(405, "text/plain", b"GET only\n", {"Allow": "GET, HEAD"})
            else:
                head_only = req.method == "HEAD"
                try:
                    resp = self.handler(req)
                except Exception:
                    log.exception("http: error answering %s", req.path)
                    resp = Response(500, "text/plain", b"internal error\n")
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.timeout)  # the whole answer must be taken within it
            conn.sock.sendall(_render(resp, head_only))
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            outcome = "timed_out" if outcome == "answered" else outcome
        finally:
            with self._lock:
                self._conns.pop(fd, None)
                conn.sock.close()
            self.counters.add(outcome)
