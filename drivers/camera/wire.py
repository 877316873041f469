"""The framing between the gateway and a camera's decode worker (drivers/camera/worker.py) on
the worker's stdin and stdout: one message is

    4 bytes   length N of the header, unsigned big-endian
    N bytes   the header: a JSON object (UTF-8)
    M bytes   the payload, M = the header's "size" (0 or absent: none), e.g. an image file

Requests carry ``"op"`` and ``"id"``; the worker answers each in order with the same ``"id"``
and either the op's fields or ``"error"``. No image library is needed on either side of this
module: the gateway imports it, the worker imports OpenCV.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

__all__ = [
    "MAX_HEADER",
    "WireError",
    "encode",
    "header_length",
    "parse_header",
    "read_sync",
    "write_sync",
]

MAX_HEADER = 1 << 20  # a header is a few hundred bytes; more means the stream is out of step
_LEN = struct.Struct(">I")


class WireError(ValueError):
    """A message that breaks the framing (bad length, not a JSON object)."""


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One message; ``header["size"]`` is set to the payload's length."""
    body = json.dumps({**header, "size": len(payload)}, ensure_ascii=False).encode()
    return _LEN.pack(len(body)) + body + payload


def header_length(prefix: bytes) -> int:
    (n,) = _LEN.unpack(prefix)
    if not 0 < n <= MAX_HEADER:
        raise WireError(f"header of {n} bytes (1…{MAX_HEADER} expected): stream out of step")
    return int(n)


def parse_header(raw: bytes) -> tuple[dict[str, Any], int]:
    """The header object and the length of the payload that follows it."""
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise WireError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise WireError(f"header is not a JSON object: {type(header).__name__}")
    size = header.get("size", 0)
    if not isinstance(size, int) or size < 0:
        raise WireError(f"header size {size!r} is not a length")
    return header, size


def _exactly(stream: IO[bytes], n: int) -> bytes | None:
    chunks: list[bytes] = []
    left = n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_sync(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next message from a blocking stream; None at its end (also in mid-message)."""
    prefix = _exactly(stream, _LEN.size)
    if prefix is None:
        return None
    raw = _exactly(stream, header_length(prefix))
    if raw is None:
        return None
    header, size = parse_header(raw)
    payload = _exactly(stream, size) if size else b""
    if payload is None:
        return None
    return header, payload


def write_sync(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    stream.write(encode(header, payload))
    stream.flush()
