"""Check a message from MQTT against the event definitions the gateway builds its events from
(:mod:`gateway.event_schemas`, compiled: :mod:`gateway.event_schemas.compiled`) and what the
trace store needs on top; say exactly what is wrong when it does not (the reason kept in
quarantine, :attr:`BadEvent.kind` its category for ``/metrics``).

Before anything is parsed: a payload over :data:`MAX_PAYLOAD_BYTES` is refused unread, and one
nested deeper than :data:`MAX_DEPTH` (a cheap bracket scan outside strings) is refused before
``json.loads`` could recurse that deep (``RecursionError`` is caught as well).

Types that carry records to upload (QB/T 5279 6.3, 11.2): ``pack.bag`` (a code commissioned),
``pack.case`` / ``pack.pallet`` (packing), ``pack.unpack`` (rework), ``ship.outbound`` and
``ccp.*``. ``batch.start`` / ``batch.end`` describe a batch. Every other valid event is kept
as-is (alarms, no-reads, …) for trace questions and is not uploaded.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.event_schemas.compiled import check_event

__all__ = [
    "KINDS", "MAX_DEPTH", "MAX_PAYLOAD_BYTES", "BadEvent", "Parsed", "bag_codes", "parse_event",
]  # fmt: skip

MAX_CODE_LEN = 128
MAX_PAYLOAD_BYTES = 1024 * 1024  # an event is a few hundred bytes; a pallet's a few KiB
MAX_DEPTH = 32  # nesting of JSON arrays/objects; events nest 3 or 4 deep
_BRACKETS = re.compile(rb'[\[\]{}]|"(?:[^"\\]|\\.)*"')

#: BadEvent kinds (the ``reason`` label of saltgw_bridge_quarantined_messages_total)
KINDS = ("too_large", "too_deep", "not_json", "schema", "content", "unauthenticated", "error")


class BadEvent(ValueError):
    """The payload is not a valid event; the message is the reason, ``kind`` its category:
    ``too_large``, ``too_deep``, ``not_json`` (not UTF-8 JSON), ``schema`` (fails the event
    type's definition), ``content`` (valid by the schema, not storable: e.g. text XML cannot
    carry, a case holding itself), ``unauthenticated`` (not signed by a gateway the bridge
    knows: gateway/bridge/gateways.py), ``error`` (the bridge failed on it: a bug, logged)."""

    def __init__(self, reason: str, kind: str = "content") -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(slots=True)
class Parsed:
    id: str
    type: str
    ts: str
    gateway: str
    seq: int
    enterprise: str
    site: str
    line: str
    device: str | None
    batch: str | None
    data: dict[str, Any]
    up: bool = False
    weight: int = 0
    codes: list[str] = field(default_factory=list)  # pack.*: parent first, then children
    note: str | None = None  # kept with the event (e.g. a type this bridge has no schema for)

    @property
    def group(self) -> str:
        return self.type.split(".", 1)[0]


def _str(obj: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    v = obj.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip():
        raise BadEvent(f"{where}{key} must be a non-empty string; got {v!r}"[:300])
    return v


def _code(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v or len(v) > MAX_CODE_LEN or v != v.strip():
        raise BadEvent(f"{where} must be a code (1-{MAX_CODE_LEN} characters); got {v!r}"[:300])
    if any(ord(c) < 0x21 or c == "\x7f" for c in v):
        raise BadEvent(f"{where} holds control or space characters: {v!r}"[:300])
    return v


def _codes(v: Any, where: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(v, list) or (not v and not allow_empty):
        raise BadEvent(f"{where} must be a non-empty list of codes; got {v!r}"[:300])
    out = [_code(c, f"{where}[{i}]") for i, c in enumerate(v)]
    if len(set(out)) != len(out):
        raise BadEvent(f"{where} lists a code twice")
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _envelope(obj: dict[str, Any]) -> Parsed:
    """The envelope of an event its schema accepted (types and patterns are checked there)."""
    ts = obj["ts"]
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        raise BadEvent(f"ts {ts!r} is not a valid time") from None
    return Parsed(
        id=obj["id"],
        type=obj["type"],
        ts=ts,
        gateway=obj["gateway"],
        seq=obj["seq"],
        enterprise=obj["enterprise"],
        site=obj["site"],
        line=obj["line"],
        device=obj.get("device"),
        batch=obj.get("batch"),
        data=obj["data"],
    )


# characters XML 1.0 cannot carry (controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(obj: Any, where: str) -> None:
    """Every text of the event must fit in an XML document (it will be uploaded as one)."""
    if isinstance(obj, str):
        if _NOT_XML.search(obj):
            raise BadEvent(f"{where or 'a value'} holds characters XML cannot carry: {obj!r}"[:300])
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _xml_safe(k, where)
            _xml_safe(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _xml_safe(v, f"{where}[{i}]")


def _depth(payload: bytes) -> int:
    """How deep arrays and objects nest in ``payload`` (brackets inside strings not counted);
    a scan without recursion, so that ``json.loads`` never meets a payload that would blow it."""
    if payload.count(b"[") + payload.count(b"{") <= MAX_DEPTH:
        return 0  # cannot be deeper than the number of opening brackets
    depth = deepest = 0
    for m in _BRACKETS.finditer(payload):
        c = m.group()[:1]
        if c in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif c in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_event(payload: bytes) -> Parsed:
    """The event in ``payload``, checked; raises :class:`BadEvent` with the reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise BadEvent(
            f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES}", "too_large"
        )
    depth = _depth(payload)
    if depth > MAX_DEPTH:
        raise BadEvent(f"JSON nested {depth} deep (at most {MAX_DEPTH})", "too_deep")
    try:
        obj = json.loads(payload)
    except RecursionError:
        raise BadEvent(f"JSON nested too deep (at most {MAX_DEPTH})", "too_deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent(f"not JSON: {exc}", "not_json") from None
    errors, known = check_event(obj)
    if errors:
        more = f" (and {len(errors) - 6} more)" if len(errors) > 6 else ""
        what = obj.get("type") if isinstance(obj, dict) else None
        head = f"{what}: " if isinstance(what, str) and known else ""
        raise BadEvent((head + "; ".join(errors[:6]))[:800] + more, "schema")
    _xml_safe(obj, "")
    ev = _envelope(obj)
    if known:
        _check_data(ev)
    else:
        ev.note = f"no schema for event type {ev.type!r} (envelope checked); kept, not uploaded"
    return ev


def _check_data(ev: Parsed) -> None:
    d, t = ev.data, ev.type
    where = f"{t}: data."
    if t == "pack.bag":
        ev.codes = [_code(d.get("code"), where + "code")]
        ev.up, ev.weight = True, 1
    elif t in ("pack.case", "pack.pallet"):
        parent = _code(d.get("code"), where + "code")
        children = _codes(d.get("children"), where + "children")
        if parent in children:
            raise BadEvent(f"{where}children holds the parent code {parent!r}")
        ev.codes = [parent, *children]
        ev.up, ev.weight = True, 1 + len(children)
    elif t == "pack.unpack":
        parent = _code(d.get("code"), where + "code")
        kids = d.get("children")
        children = [] if kids is None else _codes(kids, where + "children", allow_empty=True)
        ev.codes = [parent, *children]
        ev.up, ev.weight = True, 1 + len(children)
    elif t == "ship.outbound":  # table 4: order number and customer are required
        _str(d, "order", where)
        _str(d, "customer", where)
        _str(d, "customer_type", where, optional=True)
        if "codes" in d:  # several codes shipped in one event
            ev.codes = _codes(d.get("codes"), where + "codes")
        else:  # one scanned bag, case or pallet code per event
            ev.codes = [_code(d.get("code"), where + "code (or codes)")]
        ev.up, ev.weight = True, len(ev.codes) + len(bag_codes(d, where))
    elif ev.group == "ccp":
        _check_ccp(ev, where)
        ev.up, ev.weight = True, 1
    elif t == "batch.start" or t == "batch.end":
        batch = d.get("batch", ev.batch)
        if not isinstance(batch, str) or not batch:
            raise BadEvent(f"{t} names no batch (data.batch or the envelope's batch)")
        ev.batch = batch
        date = d.get("production_date")
        if date is not None:
            try:
                datetime.strptime(str(date), "%Y-%m-%d")
            except ValueError:
                raise BadEvent(f"{where}production_date {date!r} is not YYYY-MM-DD") from None
        days = d.get("shelf_life_days")
        if days is not None and (not isinstance(days, int) or isinstance(days, bool) or days < 1):
            raise BadEvent(f"{where}shelf_life_days must be a positive integer; got {days!r}")


def bag_codes(d: dict[str, Any], where: str) -> list[str]:
    """The bags a scan of a case or pallet counts for (``bag_codes``, docs/wholesale.md);
    none when absent."""
    if d.get("bag_codes") is None:
        return []
    return _codes(d["bag_codes"], where + "bag_codes")


def _check_ccp(ev: Parsed, where: str) -> None:
    d = ev.data
    value = d.get("value")
    if not (_number(value) or isinstance(value, bool)):
        raise BadEvent(f"{where}value must be a number or a boolean; got {value!r}"[:300])
    unit = d.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise BadEvent(f"{where}unit must be a string or null; got {unit!r}")
    limits = d.get("limits")
    if not isinstance(limits, dict):
        raise BadEvent(f"{where}limits must be an object like {{'lo': 388.0, 'hi': null}}")
    for k in ("lo", "hi"):
        v = limits.get(k)
        if v is not None and not _number(v):
            raise BadEvent(f"{where}limits.{k} must be a number or null; got {v!r}")
    if d.get("verdict") not in ("pass", "fail"):
        raise BadEvent(f"{where}verdict must be 'pass' or 'fail'; got {d.get('verdict')!r}")
