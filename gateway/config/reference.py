"""The tag-map reference (docs/config-reference.md), generated from the config models' JSON
Schema: one table per section or entry kind. ``saltgw schema --markdown`` prints it; a test fails
when the committed file is stale."""

from __future__ import annotations

import json
from typing import Any

from gateway.config.models import config_model

__all__ = ["render_reference"]

HEADER = """# Config and tag-map reference

Generated from the pydantic models by `saltgw schema --markdown`; do not edit by hand
(`tests/unit/test_config_reference.py` fails when this file is stale). Unknown keys are errors.
`saltgw validate FILE` checks a file; `saltgw schema` prints the JSON Schema for YAML editors.
Values may use `${NAME}` / `${NAME:-default}` (environment variables); relative paths are relative
to the working directory; `saltgw reload` applies a changed map to a running gateway: see
[operations.md, "The map on a running line"](operations.md#the-map-on-a-running-line).
"""


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return " or ".join(_type(p) for p in prop[key])
    t = prop.get("type")
    if t == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if t == "object":
        extra = prop.get("additionalProperties")
        return f"map of {_type(extra)}" if isinstance(extra, dict) else "mapping"
    return str(t) if t else "any"


def _default(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" in prop:
        return f"`{json.dumps(prop['default'], ensure_ascii=False)}`"
    return ""


def _table(name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"## {name}", ""]
    if schema.get("description"):
        out += [" ".join(schema["description"].split()), ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    required = set(schema.get("required", ()))
    for key, prop in schema.get("properties", {}).items():
        desc = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
        out.append(f"| `{key}` | {_type(prop)} | {_default(prop, key in required)} | {desc} |")
    return [*out, ""]


def render_reference() -> str:
    schema = config_model().model_json_schema()
    lines = [HEADER, *_table("Config (top level)", schema)]
    for name, sub in sorted(schema.get("$defs", {}).items()):
        if "properties" in sub:
            lines += _table(name, sub)
    return "\n".join(lines).rstrip() + "\n"
