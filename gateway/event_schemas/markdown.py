"""docs/events.md, generated from the schemas: the topic tree, the envelope, and per event type
its topic, meaning, the clause it records, its fields, an example and its JSON Schema.

Field tables are rendered from the JSON Schemas themselves (not from the specs), so the
reference says exactly what a validator checks.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from gateway.event_schemas.envelope import (
    ENTERPRISE_RE,
    ID_RE,
    TS_RE,
    TYPE_RE,
    UUID_RE,
    envelope_schema,
)
from gateway.event_schemas.messages import MESSAGES, Message
from gateway.event_schemas.pack import CODE_RE
from gateway.event_schemas.registry import DRAFT, SPECS, schema_for
from gateway.event_schemas.spec import JSON, EventSpec
from gateway.event_schemas.telemetry import TELEMETRY_MESSAGES
from gateway.topics import Topics

__all__ = ["render_markdown"]

TOPICS = Topics("salt/v1", "{enterprise}", "{site}", "{line}", "{gateway_id}")
ROOT = TOPICS.line_root
EXAMPLE_ENVELOPE = {
    "id": "0193f0c6-5a1e-7c3b-9d2f-4b8e1a6c0d7e",
    "gateway": "gw-daiyue-1",
    "seq": 1042,
    "type": "",
    "ts": "2026-11-22T10:15:30.123+08:00",
    "enterprise": "8035",
    "site": "daiyue",
    "line": "L1",
}
PATTERN_NAMES = {
    CODE_RE: "code",
    ID_RE: "id",
    UUID_RE: "UUID",
    ENTERPRISE_RE: "enterprise id",
    TS_RE: "RFC 3339 time",
    f"^$|{TS_RE}": 'RFC 3339 time or `""`',
    TYPE_RE: "`group.kind`",
}
GROUPS = (
    ("ccp", "Critical control points (`ccp.*`)"),
    ("feed", "Production: feeding, batches, line state (`feed.*`, `batch.*`, `line.*`)"),
    ("pack", "Packing: codes and binding (`pack.*`)"),
    ("ship", "Shipping and recall (`ship.*`, `recall.*`)"),
    ("config", "The gateway's map (`config.*`)"),
    ("record", "Records from MES and LIMS (`record.*`, docs/records.md)"),
    ("alarm", "Alarms (`alarm.*`)"),
)
GROUP_OF = {"batch": "feed", "line": "feed", "recall": "ship"}
_UNIT = re.compile(r" Unit: (?P<unit>.+)\.$")

HEAD = f"""# Events: topics, envelope, and a JSON Schema per type

Generated from `gateway/event_schemas/` by `saltgw schema --events --markdown` (or
`python -m gateway.event_schemas --markdown`); do not edit by hand
(`tests/unit/test_event_schemas.py` fails when this file is stale). `saltgw schema --events`
prints every schema below as one JSON Schema document (draft 2020-12) for validators and code
generators; in Python, `gateway.event_schemas.schema_for(type)` is one type's schema and
`validate_event(obj)` checks an event (it needs `jsonschema`). The contract is
`../shared/design/contract.md`; the clauses cited are QB/T 5279-2018's.

## Topic tree

`{{prefix}}/{{enterprise}}/{{site}}/{{line}}/{{category}}/{{name}}`, prefix `salt/v1` by default
(`mqtt.topic_prefix`), `enterprise` the 4-digit code of Annex A, `site` and `line` from the
config (`gateway:`).

| topic | QoS | retained | content |
|---|---|---|---|
| `{ROOT}/event/{{group}}/{{kind}}` | 1 | no | one event, `type` = `{{group}}.{{kind}}` |
| `{ROOT}/alarm/{{kind}}` | 1 | no | one alarm: the same envelope, `type` = `alarm.{{kind}}` |
| `{TOPICS.kpi()}` | 1 | yes | the line's KPIs ([message](#kpi)) |
| `{TOPICS.state("{device}")}` | 1 | yes | a device's connection state ([message](#state)) |
| `{ROOT}/cmd/{{device}}` | 1 | no | a MES command, published by the MES (docs/commands.md) |
| `{TOPICS.command_response("{device}")}` | 1 | no | the answer to it ([message](#response)) |
| `{TOPICS.status()}` | 1 | yes | the bare text `online`, or `offline` (also the last will); \
on MQTT 5 `online` carries the user properties `broker` (host:port in use) and `endpoint` |
| `{TOPICS.status_broker()}` | 1 | yes | the broker endpoint in use, on every connect: \
`{{"gateway", "broker": "host:port", "endpoint": 1-based index in mqtt.urls, "endpoints": [...], \
"switches": N}}` (docs/scaling.md) |
| `{TOPICS.tags("{device}")}` | 1 | no | tag telemetry: one record of a device ([message](#tags)) |
| `{TOPICS.tag("{device}", "{tag}")}` | 1 | yes | tag telemetry: a tag's last value \
([message](#tag)) |

Subscribe to `salt/v1/8035/daiyue/L1/#` for everything of a line, `…/L1/event/ccp/+` for the
CCP records, `…/L1/alarm/#` for the alarms. Delivery is at-least-once: an event may arrive twice
(after a reconnect or a restart), always with the same `id`; de-duplicate by `id`. `seq` is
gapless per gateway, so a subscriber can tell that it missed something (a gap after
`journal.when_full: drop_oldest` is intentional and counted).

## Reading the schemas

- **Open schemas.** An object may carry fields its schema does not list: a newer gateway may
  add fields, and a subscriber ignores what it does not know. `validate_event(obj,
  strict=True)` refuses unlisted fields; the tests validate the gateway's own output that way,
  so every field it sends is in this reference.
- **Absent or null.** A field marked *required: no* may be absent; a field whose type says
  "or null" is always there, with `null` when there is nothing to say. *required: when …*
  means required while the object's other fields hold those values.
- **Codes** are checked traceability codes (6.2): `{CODE_RE}` — the 4-digit enterprise code,
  then at most 20 printable characters. **ids** (gateway, site, line, device) are
  `{ID_RE}`. **Times** are RFC 3339 with milliseconds and the line's offset
  (`2026-11-22T10:15:30.123+08:00`).
- **Units** are in the unit column; a `ccp.*` record also names its unit in `data.unit`.
"""


TELEMETRY_HEAD = """## Tag telemetry

With a `telemetry:` section in the config, the tag values the devices are read for are
published beside the events, for a unified namespace (UNS): each device chooses its tags and
report-by-exception settings in its own `telemetry:` (docs/config-reference.md). Records go
through a store of their own (`telemetry.store`, SQLite, durable across `kill -9`), never the
event journal: a full or failing telemetry store neither delays nor drops an event.

- **By exception.** A tag is reported when it moved by more than its deadband (absolute, or
  percent of the last reported value) since its last report, at most every
  `min_interval_ms`, at least every `max_interval_secs` (heartbeat), and at once when its
  quality changes. The first value is always reported.
- **Quality.** `good`; `bad` when the driver could not decode the tag (value null; the
  `alarm.device` event says why); `stale` for every chosen tag of a device that went offline
  or into fault, with its last good value. The next good read reports every tag again.
- **Per record, and retained per tag.** `…/tags/{device}` carries every record (100 tags of a
  device read every 100 ms: 10 messages a second, not 1,000). The retained
  `…/tag/{device}/{tag}` is a last-value cache: each tag's latest value at most every
  `telemetry.retained_interval_ms` (default 5 s; 0: every change), a change of quality at
  once (at 1 s the retained messages of 1,000 changing tags took two fifths of the
  gateway's CPU: docs/performance.md). Publishing every change of every tag retained would
  multiply the messages by the number of tags and make the broker rewrite its retained store
  for each; a subscriber that needs every value reads `tags/{device}`.
- **Delivery.** QoS 1, at least once; the store's cursor moves past a record only when the
  broker acknowledged its message and its retained values, so after an outage or a crash what
  was not acknowledged is sent again (same `id`). During a long outage the store is bounded by
  `telemetry.max_records` and `max_age_secs`: `when_full: coalesce` (default) folds the oldest
  records into one per device with the latest value of each tag (marked `coalesced`),
  `drop_oldest` deletes them; each counted as intentional on `/metrics`.
"""


# -- rendering helpers ----------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _lit(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _bounds(s: JSON) -> str:
    parts = []
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in s:
            parts.append(f"{sign} {s[key]:g}")
    return f" {', '.join(parts)}" if parts else ""


def type_text(s: JSON) -> str:
    """A schema's type in a few words: ``integer ≥ 1``, ``"pass" | "fail"``, ``code or null``."""
    if "const" in s:
        return _lit(s["const"])
    if "enum" in s:
        return " | ".join(_lit(v) for v in s["enum"])
    kinds = s.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in kinds:
        if kind == "string":
            pattern = s.get("pattern")
            if pattern in PATTERN_NAMES:
                words.append(PATTERN_NAMES[pattern])
            elif s.get("format") == "date-time":
                words.append("RFC 3339 time")
            else:
                words.append("string" + (" (non-empty)" if s.get("minLength") else ""))
        elif kind == "array":
            item = type_text(s.get("items", {}))
            nonempty = "non-empty " if s.get("minItems") else ""
            unique = "unique " if s.get("uniqueItems") else ""
            words.append(f"{nonempty}list of {unique}{item}s")
        elif kind == "object":
            extra = s.get("additionalProperties")
            words.append(f"map of {type_text(extra)}" if isinstance(extra, dict) else "object")
        elif kind in ("integer", "number"):
            words.append(kind + _bounds(s))
        else:
            words.append(kind)
    return " or ".join(words)


def _conditions(s: JSON) -> dict[str, str]:
    """Field → "when …" for the fields an object requires under a condition."""
    out: dict[str, str] = {}
    for cond in s.get("allOf", []):
        when = cond.get("if", {}).get("properties", {})
        then = cond.get("then", {}).get("required", [])
        parts = []
        for key, match in when.items():
            values = match["enum"] if "enum" in match else [match.get("const")]
            parts.append(f"`{key}` is " + " or ".join(_lit(v) for v in values))
        text = "when " + " and ".join(parts)
        for name in then:
            out[name] = text
    return out


def field_rows(s: JSON, prefix: str = "") -> list[str]:
    """Table rows for an object schema's properties, nested objects as ``a.b`` rows."""
    rows = []
    required = set(s.get("required", []))
    conditional = _conditions(s)
    for name, prop in s.get("properties", {}).items():
        desc = prop.get("description", "")
        m = _UNIT.search(desc)
        unit = m.group("unit") if m else ""
        if m:
            desc = desc[: m.start()]
        need = "yes" if name in required else conditional.get(name, "no")
        path = f"{prefix}{name}"
        rows.append(
            f"| `{path}` | {_cell(type_text(prop))} | {_cell(unit)} | {need} | {_cell(desc)} |"
        )
        if "properties" in prop:
            rows.extend(field_rows(prop, f"{path}."))
        items = prop.get("items", {})
        if "properties" in items:
            rows.extend(field_rows(items, f"{path}[]."))
    return rows


def _table(s: JSON) -> str:
    head = "| field | type | unit | required | description |\n|---|---|---|---|---|\n"
    return head + "\n".join(field_rows(s)) + "\n"


def _json_block(obj: Any) -> str:
    return "```json\n" + json.dumps(obj, indent=2, ensure_ascii=False) + "\n```\n"


def _details(summary: str, obj: Any) -> str:
    return f"<details><summary>{summary}</summary>\n\n{_json_block(obj)}\n</details>\n"


def example_event(spec: EventSpec, seq: int) -> JSON:
    """The spec's example as a whole event (a fixed id, time and origin)."""
    out: JSON = {**EXAMPLE_ENVELOPE, "seq": 1000 + seq, "type": spec.type}
    out["device"] = spec.example.get("device")
    out["batch"] = spec.example.get("batch")
    out["data"] = copy.deepcopy(spec.example["data"])
    return out


def _anchor(etype: str) -> str:
    return etype.replace(".", "")


# -- sections -----------------------------------------------------------------------------------
def _envelope() -> str:
    schema = envelope_schema()
    return (
        "## The envelope\n\n"
        "Every event, whatever its type, is one JSON object (UTF-8) with exactly these fields "
        "(`gateway/events.py`); each type's section below narrows `type`, `device`, `batch` "
        "and gives the schema of `data`.\n\n"
        + _table(schema)
        + "\n"
        + _details("JSON Schema of the envelope", {"$schema": DRAFT, **schema})
        + SIGNATURE
    )


SIGNATURE = """
### Signature

Each gateway signs what it publishes on the event and alarm topics, and its seq marks, with a
key of its own (`gateway/signing.py`; QB/T 5279-2018 11.4). The gateway serialises the envelope
as compact JSON, computes HMAC-SHA-256 with its key over exactly those bytes, and publishes
them with `,"sig":"<64 lowercase hex digits>"` written in before the closing `}`:

```
signed = b'{"id":"…","gateway":"gw-daiyue-1",…,"data":{…}}'
payload = signed[:-1] + b',"sig":"' + hmac_sha256(key, signed).hex().encode() + b'"}'
```

To verify, take the last 74 bytes (`,"sig":"` + 64 hex digits + `"}`) off the payload, put `}`
back, recompute the HMAC over the result with the key of the gateway the event names, and
compare in constant time. Nothing is re-serialised, so key order, number formats and escapes
need no canonical form, and the same bytes work over MQTT 3.1.1 and 5. The journal signs an
event once when it stores it, so a re-sent or replayed event carries the same bytes and the same
signature. `sig` is an added member: a subscriber that does not check it reads the event as
before. Which key a gateway uses and how a bridge learns the keys of the gateways it accepts:
[security.md](security.md#authenticated-events), [bridge.md](bridge.md#which-gateways).
"""


def _index() -> str:
    rows = ["| type | topic | what |", "|---|---|---|"]
    for spec in SPECS:
        topic = TOPICS.event(spec.type).removeprefix(ROOT)
        rows.append(
            f"| [`{spec.type}`](#{_anchor(spec.type)}) | `…{topic}` | {_cell(spec.title)} |"
        )
    return "## Event types\n\n" + "\n".join(rows) + "\n"


def _envelope_note(spec: EventSpec) -> str:
    device = {
        "required": "the device it comes from",
        "null": "always null (no single device)",
        "either": "the device, or null",
    }[spec.device]
    batch = (
        "always the batch"
        if spec.batch == "required"
        else "the running batch, or null outside a batch"
    )
    return f"`device`: {device}; `batch`: {batch}"


def _event(spec: EventSpec, n: int) -> str:
    full = schema_for(spec.type)
    data = full["properties"]["data"]
    lines = [
        f"### `{spec.type}`\n",
        f"**{spec.title}** {spec.meaning}\n",
        "| | |\n|---|---|",
        f"| topic | `{TOPICS.event(spec.type)}` (QoS 1, not retained) |",
        f"| records | {_cell(spec.records)} |",
        f"| emitted by | {_cell(spec.source)} |",
        f"| envelope | {_envelope_note(spec)} |",
        "",
        _table(data),
    ]
    if spec.notes:
        lines.append(spec.notes + "\n")
    lines.append("Example:\n")
    lines.append(_json_block(example_event(spec, n)))
    lines.append(_details(f"JSON Schema of <code>{spec.type}</code> data", data))
    return "\n".join(lines)


def _message(msg: Message) -> str:
    topic = f"{ROOT}/{msg.topic}"
    retained = "retained" if msg.retained else "not retained"
    return (
        f"### {msg.name}\n\n`{topic}` (QoS 1, {retained}). {msg.meaning}\n\n"
        + _table(msg.schema)
        + "\nExample:\n\n"
        + _json_block(msg.example)
        + "\n"
        + _details(f"JSON Schema of the {msg.name} message", msg.schema)
    )


def render_markdown() -> str:
    """The whole of docs/events.md."""
    parts = [HEAD, _envelope(), _index()]
    for group, heading in GROUPS:
        parts.append(f"## {heading}\n")
        for n, spec in enumerate(SPECS):
            if GROUP_OF.get(spec.group, spec.group) == group:
                parts.append(_event(spec, n))
    parts.append(
        "## Other messages\n\nNot events (no envelope): the retained state and KPI messages, "
        "and the answers to MES commands.\n"
    )
    parts.extend(_message(m) for m in MESSAGES)
    parts.append(TELEMETRY_HEAD)
    parts.extend(_message(m) for m in TELEMETRY_MESSAGES)
    return "\n".join(p.rstrip("\n") + "\n" for p in parts)
