"""The event reference: a JSON Schema (draft 2020-12) for the envelope and for each event type's
``data``, in one place, and the Markdown reference generated from them (``docs/events.md``)::

    from gateway.event_schemas import schema_for, validate_event

    schema_for("ccp.net_content")      # the JSON Schema of a whole ccp.net_content event
    validate_event(json.loads(payload))  # raises InvalidEvent listing every mistake
    validate_event(obj, strict=True)   # … and refuses fields the schemas do not list

``saltgw schema --events`` prints every schema as one document; ``saltgw schema --events
--markdown`` (or ``python -m gateway.event_schemas --markdown``) prints docs/events.md.
Layout: ``spec.py`` (the vocabulary), ``envelope.py``, one module per group of types (``ccp``,
``line``, ``pack``, ``alarms``), ``messages.py`` (state, KPI, command response),
``telemetry.py`` (tag telemetry), ``registry.py``, ``validate.py``, ``markdown.py``.
"""

from gateway.event_schemas.markdown import render_markdown
from gateway.event_schemas.messages import MESSAGES as _DOMAIN_MESSAGES
from gateway.event_schemas.registry import EVENT_TYPES, SPECS, events_schema, schema_for, spec_for
from gateway.event_schemas.spec import EventSpec, Field
from gateway.event_schemas.telemetry import TELEMETRY_MESSAGES
from gateway.event_schemas.validate import (
    InvalidEvent,
    event_errors,
    validate_event,
    validate_message,
)

MESSAGES = _DOMAIN_MESSAGES + TELEMETRY_MESSAGES  # every message that is not an event

__all__ = [
    "EVENT_TYPES",
    "MESSAGES",
    "SPECS",
    "EventSpec",
    "Field",
    "InvalidEvent",
    "event_errors",
    "events_schema",
    "render_markdown",
    "schema_for",
    "spec_for",
    "validate_event",
    "validate_message",
]
