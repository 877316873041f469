"""Sign-in sessions of the console: a random token in an HttpOnly, SameSite=Strict cookie, a
per-session CSRF token every POST must carry, expiry after ``session_secs``, and a throttle on
failed sign-ins (per user name and per client: after :data:`MAX_FAILURES` failures in
:data:`FAIL_WINDOW_SECS`, refused until the window has passed). Sessions live in the process:
a restart of the console signs everyone out. The clock is injected."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "Session", "Sessions", "Throttle"]

COOKIE = "saltgw_console"
MAX_FAILURES = 5
FAIL_WINDOW_SECS = 300.0
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user: str
    role: str
    csrf: str
    expires: float

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, lifetime_secs: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime_secs
        self.clock = clock
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, user: str, role: str) -> Session:
        now = self.clock()
        s = Session(
            secrets.token_urlsafe(32), user, role, secrets.token_urlsafe(24), now + self.lifetime
        )
        with self._lock:
            self._expire(now)
            if len(self._by_token) >= MAX_SESSIONS:  # the oldest sign-in goes first
                oldest = min(self._by_token.values(), key=lambda x: x.expires)
                del self._by_token[oldest.token]
            self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            s = self._by_token.get(token)
            if s is not None and s.expires <= self.clock():
                del self._by_token[token]
                return None
            return s

    def close(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def close_user(self, user: str) -> None:
        """Sign ``user`` out everywhere (removed from the users file, role changed)."""
        with self._lock:
            for t in [t for t, s in self._by_token.items() if s.user == user]:
                del self._by_token[t]

    def _expire(self, now: float) -> None:
        for t in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[t]


class Throttle:
    """Failed sign-ins per key (a user name, a client address)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, *keys: str) -> bool:
        now = self.clock()
        with self._lock:
            for k in keys:
                q = self._fails.get(k)
                while q and q[0] <= now - FAIL_WINDOW_SECS:
                    q.popleft()
                if q is not None and len(q) >= MAX_FAILURES:
                    return True
        return False

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._fails) > MAX_SESSIONS:
                self._fails.clear()
            for k in keys:
                self._fails.setdefault(k, deque(maxlen=MAX_FAILURES)).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._fails.pop(k, None)
