"""Fuzzing the bridge's ingest parse path (gateway/bridge/records.py, store.py): whatever comes
on the event topics — arbitrary bytes, JSON nested deep, events with fields mutated to any JSON
value — ``parse_event`` either returns an event or raises ``BadEvent`` with a kind, and
``TraceStore.ingest`` stores or quarantines every message of a group, never raising. The
compiled event checks agree with ``jsonschema`` (the reference validator) on every mutation."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.bridge.records import KINDS, MAX_DEPTH, BadEvent, parse_event
from gateway.bridge.store import TraceStore
from gateway.event_schemas import EVENT_TYPES, event_errors
from gateway.event_schemas.compiled import check_event
from tests.fuzz.hypothesis_settings import fuzz_settings
from tests.support.trace_events import LineEvents

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def _valid(etype: str) -> dict[str, Any]:
    return LineEvents().make(etype, {}, "B1")


def _kind(raw: bytes) -> str | None:
    """None when ``raw`` is a valid event, else the kind of its refusal (no other exception)."""
    try:
        parse_event(raw)
    except BadEvent as exc:
        return exc.kind if str(exc) else "(no reason)"
    return None


def _parse(raw: bytes) -> None:
    kind = _kind(raw)
    assert kind is None or kind in KINDS


@fuzz_settings(300)
@given(st.binary(max_size=2000))
@example(b"[" * 5000)
@example(b'{"a":' * 100_000)
@example(b"\xed\xa0\x80")  # a lone surrogate, UTF-8 encoded
@example(b'"\\ud800"')
def test_any_bytes_parse_or_are_refused_with_a_kind(raw: bytes) -> None:
    _parse(raw)


@fuzz_settings(200)
@given(st.integers(1, 3 * MAX_DEPTH), st.sampled_from(["[", '{"k":']), st.text(max_size=20))
def test_nesting_is_refused_before_it_can_recurse(depth: int, opener: str, inner: str) -> None:
    closer = "]" if opener == "[" else "}"
    raw = (opener * depth + json.dumps(inner) + closer * depth).encode()
    # deeper than the cap: refused unparsed; else parsed, and not an event
    assert _kind(raw) == ("too_deep" if depth > MAX_DEPTH else "schema")


@fuzz_settings(400)
@given(
    st.sampled_from(EVENT_TYPES),
    st.sampled_from(["envelope", "data"]),
    st.text(min_size=1, max_size=12),
    JSON_VALUES,
)
def test_mutated_events_agree_with_jsonschema_and_never_raise(
    etype: str, where: str, key: str, value: Any
) -> None:
    ev = _valid(etype)
    target = ev if where == "envelope" else ev["data"]
    existing = sorted(target)
    # replace an existing field half of the time (the interesting case), else add one
    name = existing[sum(map(ord, key)) % len(existing)] if existing and len(key) % 2 else key
    target[name] = value
    compiled, _known = check_event(ev)
    reference = event_errors(ev)
    assert bool(compiled) == bool(reference), (compiled, reference)
    _parse(json.dumps(ev).encode())


@fuzz_settings(60)
@given(st.lists(st.binary(max_size=300) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                min_size=1, max_size=8))  # fmt: skip
def test_a_group_of_anything_is_stored_or_quarantined(bodies: list[bytes]) -> None:
    good = [LineEvents().make("pack.bag", {"code": f"8035FZ{i:04d}"}, "B1") for i in range(2)]
    msgs = [("t", json.dumps(good[0]).encode()), *[("t", b) for b in bodies],
            ("t", json.dumps(good[1]).encode())]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = TraceStore(Path(tmp) / "t.db")
        try:
            got = store.ingest(msgs)
            assert got.accepted + got.quarantined + got.duplicates == len(msgs)
            assert got.accepted >= 2
        finally:
            store.close()
