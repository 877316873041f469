"""One JSON object from a message a peer sent (an MES command, a lab record): the payload's size
is checked before it is parsed, and every way it can fail to be an object is one sentence
(:class:`NotAnObject`) the caller passes on in its own refusal."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["NotAnObject", "json_object", "peek_id"]


class NotAnObject(ValueError):
    """The payload is too big, not JSON, nested too deeply, or JSON but not an object."""


def json_object(payload: bytes, max_bytes: int, noun: str) -> dict[str, Any]:
    """The payload as a dict; :class:`NotAnObject` saying why not (``noun``: "command", …)."""
    if len(payload) > max_bytes:
        raise NotAnObject(f"payload of {len(payload)} bytes is not a {noun} (at most {max_bytes})")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAnObject(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise NotAnObject(f"payload is not a {noun}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise NotAnObject(f"payload must be a JSON object, not {type(obj).__name__}")
    return obj


def peek_id(payload: bytes, max_bytes: int) -> str | None:
    """The ``id`` of a refused message, to echo in the refusal: only one that could be valid
    (a string of 1-128 characters), else None."""
    try:
        raw = json_object(payload, max_bytes, "message").get("id")
    except NotAnObject:
        return None
    return raw if isinstance(raw, str) and 0 < len(raw) <= 128 else None
