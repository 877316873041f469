"""The small vocabulary the event specs are written in, and how a spec becomes a JSON Schema.

A :class:`EventSpec` lists the fields of one event type's ``data`` (:class:`Field`: name, JSON
Schema of the value, unit, description, whether it is required — always, or only when other
fields hold given values); :func:`data_schema` turns it into a draft 2020-12 schema, and
:func:`strict` closes every object of a schema to fields it does not list.

Published schemas are *open*: an object may carry fields the schema does not list (a newer
gateway may add some; subscribers ignore what they do not know). The strict form is what the
tests validate the gateway's own output with, so that a field the code emits and the reference
does not document fails a test.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "JSON",
    "EventSpec",
    "Field",
    "array",
    "boolean",
    "const",
    "data_schema",
    "enum",
    "integer",
    "nullable",
    "number",
    "obj",
    "strict",
    "string",
]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Field:
    """One field of an object: ``when`` makes it required only while the object's other
    fields hold these values (a value, or a tuple of values any of which matches)."""

    name: str
    schema: JSON
    description: str
    unit: str | None = None
    required: bool = True
    when: Mapping[str, Any] | None = None

    def described(self) -> JSON:
        text = self.description
        if self.unit:
            text = f"{text} Unit: {self.unit}."
        return {**self.schema, "description": text}


@dataclass(frozen=True)
class EventSpec:
    """One event type: what it means, what it records, what emits it, its ``data``."""

    type: str
    title: str
    meaning: str  # a paragraph for people (Markdown)
    records: str  # the clause / table of QB/T 5279-2018 (or the contract) it records
    source: str  # what emits it: a profile, the runtime, the bridge
    fields: tuple[Field, ...]
    example: JSON  # {"device": …, "batch": …, "data": {…}}
    device: Literal["required", "null", "either"] = "required"
    batch: Literal["required", "either"] = "either"
    extra: JSON = field(default_factory=dict)  # merged into the data schema (anyOf, …)
    notes: str = ""  # after the field table (Markdown)

    @property
    def group(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def kind(self) -> str:
        return self.type.split(".", 1)[1]


# -- value schemas -------------------------------------------------------------------------------
def string(**kw: Any) -> JSON:
    return {"type": "string", **kw}


def integer(**kw: Any) -> JSON:
    return {"type": "integer", **kw}


def number(**kw: Any) -> JSON:
    return {"type": "number", **kw}


def boolean() -> JSON:
    return {"type": "boolean"}


def const(value: Any) -> JSON:
    return {"const": value}


def enum(*values: Any) -> JSON:
    return {"enum": list(values)}


def nullable(schema: JSON) -> JSON:
    """The schema, or null."""
    out = dict(schema)
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    elif "const" in out:
        out = {"enum": [out.pop("const"), None], **out}
    else:
        kind = out["type"]
        out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    return out


def array(items: JSON, **kw: Any) -> JSON:
    return {"type": "array", "items": items, **kw}


def obj(*fields: Field, **kw: Any) -> JSON:
    """An object holding ``fields`` (required ones, and ``when`` conditions, as for data)."""
    out: JSON = {
        "type": "object",
        "properties": {f.name: f.described() for f in fields},
        "required": [f.name for f in fields if f.required and f.when is None],
    }
    conditions = _conditions(fields)
    if conditions:
        out["allOf"] = conditions
    out.update(kw)
    return out


def _conditions(fields: tuple[Field, ...]) -> list[JSON]:
    groups: dict[tuple[tuple[str, Any], ...], list[str]] = {}
    for f in fields:
        if f.when is not None:
            key = tuple(sorted(f.when.items()))
            groups.setdefault(key, []).append(f.name)
    out = []
    for key, names in groups.items():
        match = {k: enum(*v) if isinstance(v, tuple) else const(v) for k, v in key}
        out.append(
            {
                "if": {"properties": match, "required": [k for k, _ in key]},
                "then": {"required": names},
            }
        )
    return out


def data_schema(spec: EventSpec) -> JSON:
    """The JSON Schema of ``spec``'s ``data`` (open: unknown fields allowed)."""
    out = obj(*spec.fields, title=f"{spec.type} data", description=spec.title)
    for key, value in spec.extra.items():
        if key == "allOf":
            out["allOf"] = [*out.get("allOf", []), *value]
        else:
            out[key] = value
    return out


def strict(schema: JSON) -> JSON:
    """A copy of ``schema`` in which every object with ``properties`` refuses other fields."""
    out = copy.deepcopy(schema)
    _close(out)
    return out


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for key, value in node.items():
            if key in ("if", "then", "else", "const", "enum", "examples"):
                continue  # conditions (they only add requirements) and values, not shapes
            _close(value)
    elif isinstance(node, list):
        for item in node:
            _close(item)
