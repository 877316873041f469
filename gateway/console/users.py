"""The console's users and roles (docs/console.md, "Sign-in and roles"; QB/T 5279-2018 11.4:
only authorised people use the system, and what they did is recorded).

Roles and what they may do (:data:`PERMISSIONS`), each role including the one before:

- ``operator``: view the line (overview, charts, alarms, completeness);
- ``quality``: also trace a code, recall a batch and export a recall as CSV;
- ``admin``: also resend a quarantined document and list the users.

The users file is JSON, written owner-only (0600) by ``saltgw console-user`` through a temporary
file and a rename: ``{"users": [{"name", "role", "password"}]}`` where ``password`` is
``scrypt$N$r$p$SALT$HASH`` (hex; :func:`hashlib.scrypt`, N=2^15, r=8, p=1, 16-byte salt,
32-byte hash). Passwords are never stored, logged or compared other than in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "Role",
    "User",
    "UsersError",
    "UsersFile",
    "allowed",
    "hash_password",
    "verify_password",
]

Role = Literal["operator", "quality", "admin"]
ROLES: tuple[Role, ...] = ("operator", "quality", "admin")

PERMISSIONS: dict[str, Role] = {
    "view": "operator",
    "trace": "quality",
    "recall": "quality",
    "export": "quality",
    "resend": "admin",
    "users": "admin",
}
"""Each action and the least role that may take it."""

NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


class UsersError(Exception):
    """A users file that cannot be read or a change that cannot be made; the message says
    which file and why."""


def allowed(role: str, action: str) -> bool:
    """Whether ``role`` may take ``action`` (an unknown role or action: no)."""
    need = PERMISSIONS.get(action)
    if need is None or role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(need)  # type: ignore[arg-type]


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    """``scrypt$N$r$p$SALT$HASH`` of ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=2**27, dklen=32
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare; a malformed ``stored``
    never matches)."""
    try:
        alg, n, r, p, salt, digest = stored.split("$")
        if alg != "scrypt":
            return False
        want = bytes.fromhex(digest)
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=2**27,
            dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password: str  # scrypt$…


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsersError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


class UsersFile:
    """The users file at ``path`` (read on each :meth:`load`; the running console reloads it
    when its modification time changes, so ``saltgw console-user`` takes effect at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def load(self) -> dict[str, User]:
        """The users by name; {} when the file does not exist; UsersError when malformed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._users = None, {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return self._users
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsersError(f"{self.path}: cannot read the users file: {exc}") from None
        users: dict[str, User] = {}
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise UsersError(f'{self.path}: expected {{"users": [...]}}')
        for i, e in enumerate(entries):
            if (
                not isinstance(e, dict)
                or not isinstance(e.get("name"), str)
                or not NAME_RE.match(e["name"])
                or e.get("role") not in ROLES
                or not isinstance(e.get("password"), str)
            ):
                raise UsersError(
                    f"{self.path}: users[{i}]: expected name (letters, digits, _.-), "
                    f"role ({', '.join(ROLES)}) and password"
                )
            users[e["name"]] = User(e["name"], e["role"], e["password"])
        self._stamp, self._users = stamp, users
        return users

    def get(self, name: str) -> User | None:
        return self.load().get(name)

    def _write(self, users: dict[str, User]) -> None:
        body = {
            "users": [
                {"name": u.name, "role": u.role, "password": u.password}
                for u in sorted(users.values(), key=lambda u: u.name)
            ]
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def set(self, name: str, role: Role, password: str) -> None:
        """Add the user, or change an existing user's role and password."""
        if not NAME_RE.match(name):
            raise UsersError(f"user name {name!r}: letters, digits, '_', '.', '-' (1 to 64)")
        if role not in ROLES:
            raise UsersError(f"role {role!r}: one of {', '.join(ROLES)}")
        check_password(password)
        users = dict(self.load())
        users[name] = User(name, role, hash_password(password))
        self._write(users)

    def remove(self, name: str) -> None:
        users = dict(self.load())
        if users.pop(name, None) is None:
            raise UsersError(f"{self.path}: no user {name!r}")
        self._write(users)
