"""Validate an event (a dict, as parsed from a message) against its type's schema.

Needs ``jsonschema`` (``pip install 'saltgw[dev]'`` or ``pip install jsonschema``); the gateway
itself never validates its own events at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from gateway.event_schemas.envelope import envelope_schema
from gateway.event_schemas.registry import DRAFT, EVENT_TYPES, schema_for
from gateway.event_schemas.spec import JSON, strict

__all__ = ["InvalidEvent", "event_errors", "validate_event", "validate_message"]


class InvalidEvent(ValueError):
    """The event does not match its schema; ``errors`` holds one line per mistake."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@cache
def _validator(schema_key: str, strict_mode: bool) -> Any:
    from jsonschema import Draft202012Validator

    envelope = schema_key == ""
    schema: JSON = {"$schema": DRAFT, **envelope_schema()} if envelope else schema_for(schema_key)
    if strict_mode:
        schema = strict(schema)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _where(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(event)"


def _errors(validator: Any, obj: Any) -> list[str]:
    found = sorted(validator.iter_errors(obj), key=lambda e: (_where(e.absolute_path), e.message))
    return [f"{_where(e.absolute_path)}: {e.message}" for e in found]


def event_errors(obj: Any, *, strict: bool = False) -> list[str]:
    """Every mistake in ``obj`` as ``path: message`` (empty when it is valid).

    ``strict``: refuse fields the schemas do not list (the tests check the gateway's own
    output this way); by default they are allowed, as a subscriber should allow them."""
    envelope = _errors(_validator("", strict), obj)
    if envelope:
        return envelope
    etype = obj["type"]
    if etype not in EVENT_TYPES:
        return [f"type: no schema for event type {etype!r} (known: {', '.join(EVENT_TYPES)})"]
    return _errors(_validator(etype, strict), obj)


def validate_event(obj: Any, *, strict: bool = False) -> None:
    """Raise :class:`InvalidEvent` listing every mistake unless ``obj`` is a valid event."""
    errors = event_errors(obj, strict=strict)
    if errors:
        raise InvalidEvent(errors)


def validate_message(schema: JSON, obj: Any, *, strict_mode: bool = False) -> None:
    """Validate a non-event message (``gateway.event_schemas.MESSAGES``) against its schema."""
    from jsonschema import Draft202012Validator

    full = {"$schema": DRAFT, **(strict(schema) if strict_mode else schema)}
    errors = _errors(Draft202012Validator(full), obj)
    if errors:
        raise InvalidEvent(errors)
