"""Secrets (passwords, tokens, signing keys) come only from the environment or from files that
only their owner can read (QB/T 5279-2018 11.4; docs/security.md). Never from the config file,
never logged.

A secret file must be a regular file with no permission bits for group or others (``chmod 600``
or ``400``); anything else is refused with the fix in the message, since a key others can read
is no longer a secret. One trailing newline is stripped (``echo`` writes one).
"""

from __future__ import annotations

import os
import secrets as _random
import stat
from pathlib import Path

__all__ = ["SecretError", "generate_key_file", "read_secret_file", "secret"]


class SecretError(ValueError):
    """A secret that cannot be used; the message names the file or variable and the fix."""


def read_secret_file(path: Path, what: str) -> str:
    """The secret in ``path``; refuses files readable or writable by group or others."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SecretError(f"{what}: cannot read {str(path)!r}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"{what}: {str(path)!r} is not a regular file")
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        raise SecretError(
            f"{what}: {str(path)!r} has mode {stat.S_IMODE(st.st_mode):04o}; group and others "
            f"must have no access (run: chmod 600 {path})"
        )
    try:
        value = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{what}: cannot read {str(path)!r}: {exc}") from None
    value = value[:-1] if value.endswith("\n") else value
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise SecretError(f"{what}: {str(path)!r} is empty")
    return value


def secret(env: str | None, file: Path | None, what: str) -> str | None:
    """The secret from environment variable ``env`` if it is set and not empty, else from
    ``file``, else None."""
    if env:
        value = os.environ.get(env)
        if value:
            return value
    if file is not None:
        return read_secret_file(Path(file), what)
    return None


def generate_key_file(path: Path) -> bool:
    """Write a new random key (32 bytes, hex) to ``path``, mode 0600, unless another process got
    there first: it is written to a temporary file and linked into place, so nobody reads it
    half done. True when this call created it (the caller says so in the log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (_random.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:  # another process generated it meanwhile: theirs is the key
        return False
    finally:
        tmp.unlink()
    return True
