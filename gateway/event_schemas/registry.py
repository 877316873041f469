"""Every event type the gateway emits, by name, and its JSON Schema (draft 2020-12)."""

from __future__ import annotations

import copy
from functools import cache

from gateway.event_schemas.alarms import ALARM_SPECS
from gateway.event_schemas.ccp import CCP_SPECS
from gateway.event_schemas.config import ALARM_CONFIG, CONFIG_SPECS
from gateway.event_schemas.envelope import envelope_schema
from gateway.event_schemas.line import LINE_SPECS
from gateway.event_schemas.pack import PACK_SPECS, SHIP_SPECS
from gateway.event_schemas.records import RECORD_SPECS
from gateway.event_schemas.spec import JSON, EventSpec, data_schema

__all__ = ["DRAFT", "EVENT_TYPES", "SPECS", "events_schema", "schema_for", "spec_for"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"

#: In the order of the reference (docs/events.md).
SPECS: tuple[EventSpec, ...] = (
    *CCP_SPECS,
    *LINE_SPECS,
    *PACK_SPECS,
    *SHIP_SPECS,
    *CONFIG_SPECS,
    *RECORD_SPECS,
    *ALARM_SPECS,
    ALARM_CONFIG,
)
EVENT_TYPES: tuple[str, ...] = tuple(s.type for s in SPECS)
_BY_TYPE = {s.type: s for s in SPECS}


def spec_for(event_type: str) -> EventSpec:
    """The spec of ``event_type``; KeyError naming the known types when there is none."""
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise KeyError(
            f"no schema for event type {event_type!r} (known: {', '.join(EVENT_TYPES)})"
        ) from None


@cache
def _schema_for(event_type: str) -> JSON:
    spec = spec_for(event_type)
    out = {"$schema": DRAFT, **envelope_schema(spec, data_schema(spec))}
    out["$id"] = f"urn:saltgw:event:v1:{event_type}"
    return out


def schema_for(event_type: str) -> JSON:
    """The JSON Schema of a whole event (envelope and ``data``) of ``event_type``: standalone,
    no references. Open: objects may carry fields it does not list."""
    return copy.deepcopy(_schema_for(event_type))


def events_schema() -> JSON:
    """One schema for any event: the envelope, and the type's schema by ``type`` (an unknown
    type is checked against the envelope only). ``saltgw schema --events`` prints it."""
    defs: JSON = {"envelope": envelope_schema()}
    for t in EVENT_TYPES:
        one = copy.deepcopy(_schema_for(t))
        one.pop("$schema")
        one.pop("$id")
        defs[t] = one
    return {
        "$schema": DRAFT,
        "$id": "urn:saltgw:events:v1",
        "title": "saltgw event (topic prefix salt/v1)",
        "$ref": "#/$defs/envelope",
        "allOf": [
            {
                "if": {"properties": {"type": {"const": t}}, "required": ["type"]},
                "then": {"$ref": f"#/$defs/{t}"},
            }
            for t in EVENT_TYPES
        ],
        "$defs": defs,
    }
