"""A record message from MQTT, checked: JSON object, the message fields (``id``, ``issuer``,
``ts``, ``sig``), the record's own fields by its model (gateway/records/models.py); every refusal
names the field and what is wrong (docs/records.md)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateway.json_object import NotAnObject, json_object
from gateway.json_object import peek_id as peek_any_id
from gateway.records.models import KINDS, MODELS, Record

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "MESSAGE_FIELDS",
    "RecordRefused",
    "error_parts",
    "parse_record",
    "peek_id",
]

MAX_PAYLOAD_BYTES = 256 * 1024  # an inspection with 64 items is a few KiB
MESSAGE_FIELDS = ("id", "issuer", "ts", "sig", "source")  # the message's, not the record's
_SHOWN_ERRORS = 5


class RecordRefused(ValueError):
    """The message is not a record this gateway takes; the message says why."""


def _short(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} characters)"


def error_parts(exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, what is wrong) per validation error, in the words of docs/records.md."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if err["type"] == "missing":
            out.append((loc, "missing"))
        elif err["type"] == "extra_forbidden":
            out.append((loc, "unknown field"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append((loc, msg))
    return out


def reason_of(kind: str, exc: ValidationError) -> str:
    parts = error_parts(exc)
    text = []
    for loc, msg in parts[:_SHOWN_ERRORS]:
        field = _short(loc) or "record"
        if msg == "missing":
            text.append(f"missing field {field!r}")
        elif msg == "unknown field":
            text.append(f"unknown field {field!r}")
        else:
            text.append(f"field {field!r}: {msg}")
    if len(parts) > _SHOWN_ERRORS:
        text.append(f"{len(parts) - _SHOWN_ERRORS} more error(s)")
    return f"{kind}: " + "; ".join(text)


def peek_id(payload: bytes) -> str | None:
    """The id of a refused message, to echo (:func:`gateway.json_object.peek_id`)."""
    return peek_any_id(payload, MAX_PAYLOAD_BYTES)


def parse_record(kind: str, payload: bytes) -> tuple[dict[str, Any], Record]:
    """(the message as sent, the record) of a message on ``…/record/{kind}``; raises
    :class:`RecordRefused` naming the field."""
    model = MODELS.get(kind)
    if model is None:
        raise RecordRefused(f"unknown record kind {_short(repr(kind))} (known: {', '.join(KINDS)})")
    try:
        obj = json_object(payload, MAX_PAYLOAD_BYTES, "record")
    except NotAnObject as exc:
        raise RecordRefused(str(exc)) from None
    msg_id = obj.get("id")
    if not isinstance(msg_id, str) or not 0 < len(msg_id) <= 128:
        raise RecordRefused("field 'id': must be a string of 1-128 characters (the message id)")
    for name in ("issuer", "ts", "sig", "source"):
        v = obj.get(name)
        if v is not None and (not isinstance(v, str) or not 0 < len(v) <= 128):
            raise RecordRefused(f"field {name!r}: must be a string of 1-128 characters")
    body = {k: v for k, v in obj.items() if k not in MESSAGE_FIELDS}
    try:
        record = model.model_validate(body)
    except ValidationError as exc:
        raise RecordRefused(reason_of(kind, exc)) from None
    return obj, record
