"""Signed event envelopes (gateway/signing.py) and the bridge's check of them
(gateway/bridge/gateways.py): the wire form, where a gateway's key comes from, which gateways a
bridge knows, and what the trace store does with an event none of them signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.secrets import SecretError
from gateway.bridge.gateways import KnownGateways
from gateway.bridge.records import BadEvent
from gateway.bridge.store import TraceStore
from gateway.config.models import ConfigBase, config_model
from gateway.event_schemas import validate_event
from gateway.events import Event, EventDraft, Origin
from gateway.journal import Journal
from gateway.signing import EnvelopeSigner, default_key_path, event_key, mac, sign, signed_part
from tests.support.trace_events import TEST_GATEWAY, TEST_KEY, LineEvents, _complete, payload

OTHER_KEY = b"another-gateway-key-0000000000000"


def _cfg(tmp: Path, gateway: dict[str, Any] | None = None, **bridge: Any) -> ConfigBase:
    raw: dict[str, Any] = {
        "gateway": {"id": "gw-a", "enterprise": "8035", "site": "daiyue", "line": "L1"},
        "journal": {"path": str(tmp / "var" / "journal.db")},
        "bridge": {"store": str(tmp / "bridge.db"), **bridge},
    }
    raw["gateway"].update(gateway or {})
    return config_model().model_validate(raw)


def _owner_only(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# -- the wire form -------------------------------------------------------------------------------
def test_mac_is_hmac_sha256_rfc4231_case_2() -> None:
    assert mac(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_a_signed_payload_is_the_body_plus_a_last_sig_member_over_its_exact_bytes() -> None:
    body = b'{"id":"x","gateway":"gw-a","data":{"value":400.0,"t":"\\u00e9"}}'
    signed = sign(TEST_KEY, body)
    want = hmac.new(TEST_KEY, body, hashlib.sha256).hexdigest()
    assert signed == body[:-1] + b',"sig":"' + want.encode() + b'"}'
    obj = json.loads(signed)
    assert list(obj)[-1] == "sig" and obj["sig"] == want
    assert {k: v for k, v in obj.items() if k != "sig"} == json.loads(body)
    assert signed_part(signed) == (body, want)


@pytest.mark.parametrize(
    "payload_",
    [
        b'{"id":"x"}',  # unsigned
        b'{"id":"x","sig":"' + b"a" * 64 + b'" }',  # whitespace: not the wire form
        b'{"sig":"' + b"a" * 64 + b'","id":"x"}',  # not the last member
        b'{"id":"x","sig":"' + b"A" * 64 + b'"}',  # uppercase hex
        b'{"id":"x","sig":"' + b"a" * 63 + b'"}',  # too short
        b"",
    ],
)
def test_anything_but_the_exact_tail_has_no_signature(payload_: bytes) -> None:
    assert signed_part(payload_) is None


def test_only_a_non_empty_object_is_signed() -> None:
    for bad in (b"{}", b"[1]", b""):
        with pytest.raises(ValueError, match="non-empty JSON object"):
            sign(TEST_KEY, bad)


def test_the_signer_never_shows_its_key() -> None:
    s = EnvelopeSigner("gw-a", TEST_KEY)
    assert TEST_KEY.decode() not in repr(s) and "gw-a" in repr(s)


# -- the check of a bridge -----------------------------------------------------------------------
def _event(gateway: str = TEST_GATEWAY) -> dict[str, Any]:
    return LineEvents(gateway=gateway).make("pack.bag", {"code": "8035SIG00001"}, "B1")


def test_known_gateways_accept_what_their_key_signed_and_nothing_else() -> None:
    known = KnownGateways({TEST_GATEWAY: TEST_KEY})
    ev = _event()
    known.check(TEST_GATEWAY, payload(ev))  # no exception

    with pytest.raises(BadEvent, match="'not-our-gateway', which this bridge does not know") as e:
        known.check("not-our-gateway", payload(_event("not-our-gateway")))
    assert e.value.kind == "unauthenticated" and "known: gw-test-1" in str(e.value)
    with pytest.raises(BadEvent, match="'gw-test-1' carries no signature"):
        known.check(TEST_GATEWAY, payload(ev, key=None))
    with pytest.raises(BadEvent, match="'gw-test-1': the signature does not match"):
        known.check(TEST_GATEWAY, payload(ev, key=OTHER_KEY))
    tampered = payload(ev).replace(b"8035SIG00001", b"8035SIG00002")
    with pytest.raises(BadEvent, match="signature does not match"):
        known.check(TEST_GATEWAY, tampered)


def test_the_trace_store_quarantines_unauthenticated_events_and_stores_signed_ones(
    tmp_path: Path,
) -> None:
    store = TraceStore(tmp_path / "b.db", known=KnownGateways({TEST_GATEWAY: TEST_KEY}))
    good, forged, tampered = _event(), _event("not-our-gateway"), _event()
    body = payload(tampered).replace(b'"B1"', b'"B9"')
    got = store.ingest([
        ("t/forged", payload(forged, key=OTHER_KEY)),
        ("t/tampered", body),
        ("t/unsigned", payload(_event(), key=None)),
        ("t/good", payload(good)),
    ])  # fmt: skip
    assert (got.accepted, got.quarantined, got.by_kind["unauthenticated"]) == (1, 3, 3)
    ids = [r[0] for r in store.db.execute("SELECT id FROM events")]
    assert ids == [good["id"]]
    reasons = {t: r for t, r, _p in store.quarantined()}
    assert "'not-our-gateway', which this bridge does not know" in reasons["t/forged"]
    assert "signature does not match" in reasons["t/tampered"]
    assert "carries no signature" in reasons["t/unsigned"]
    store.close()


def test_a_seq_mark_must_be_signed_too(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "b.db", known=KnownGateways({TEST_GATEWAY: TEST_KEY}))
    topic = f"salt/v1/8035/daiyue/gateway/{TEST_GATEWAY}/seq"
    body = json.dumps({"gateway": TEST_GATEWAY, "last_seq": 50}).encode()
    store.ingest([("t/first", payload(_event()))])  # seq 1: from now on marks matter
    store.ingest([(topic, body), (topic, sign(OTHER_KEY, body))])
    assert [r for _t, r, _p in store.quarantined()] == [
        "seq mark from gateway 'gw-test-1' carries no signature (a last member \"sig\" of 64 "
        "hex digits, docs/events.md#signature)",
        "seq mark from gateway 'gw-test-1': the signature does not match (altered after "
        "signing, or signed with another key than the bridge has for it)",
    ]
    assert store.db.execute("SELECT COUNT(*) FROM seq_gaps").fetchone()[0] == 0
    store.ingest([(topic, sign(TEST_KEY, body))])  # a signed mark: seq 1..50 are a gap now
    assert store.db.execute("SELECT gateway, lo, hi FROM seq_gaps").fetchall() == [
        (TEST_GATEWAY, 2, 50)
    ]
    store.close()


# -- the gateway's key ---------------------------------------------------------------------------
def test_without_configuration_a_key_is_generated_once_beside_the_journal(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    path = default_key_path(Path(cfg.journal.path))
    assert path == tmp_path / "var" / "journal-event.key" and not path.exists()
    key = event_key(cfg)
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(key) == 64 and bytes.fromhex(key.decode())
    assert event_key(cfg) == key  # read again, not made again
    assert event_key(_cfg(tmp_path / "other")) != key
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_the_environment_wins_then_the_configured_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _owner_only(tmp_path / "gw.key", "key-from-the-file-0123456789\n")
    cfg = _cfg(tmp_path, {"event_key_env": "SALTGW_TEST_EVENT_KEY", "event_key_file": str(f)})
    monkeypatch.setenv("SALTGW_TEST_EVENT_KEY", "key-from-the-environment-0123")
    assert event_key(cfg) == b"key-from-the-environment-0123"
    monkeypatch.setenv("SALTGW_TEST_EVENT_KEY", "")
    assert event_key(cfg) == b"key-from-the-file-0123456789"
    assert not default_key_path(Path(cfg.journal.path)).exists()  # nothing generated


def test_bad_keys_are_refused_naming_what_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SALTGW_TEST_EVENT_KEY", raising=False)
    unset = _cfg(tmp_path, {"event_key_env": "SALTGW_TEST_EVENT_KEY"})
    with pytest.raises(SecretError, match="'gw-a': environment variable 'SALTGW_TEST_EVENT_KEY'"):
        event_key(unset)
    loose = _owner_only(tmp_path / "loose.key", "long-enough-key-0123456789", 0o644)
    with pytest.raises(SecretError, match=r"mode 0644.*chmod 600"):
        event_key(_cfg(tmp_path, {"event_key_file": str(loose)}))
    short = _owner_only(tmp_path / "short.key", "short")
    with pytest.raises(SecretError, match="5 characters; at least 16"):
        event_key(_cfg(tmp_path, {"event_key_file": str(short)}))


# -- which gateways a bridge knows ---------------------------------------------------------------
def test_a_bridge_knows_its_own_gateway_without_configuration(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    known = KnownGateways.from_config(cfg)
    assert known.ids == ["gw-a"]
    key = event_key(cfg)
    ev = _event("gw-a")
    known.check("gw-a", payload(ev, key=key))
    with pytest.raises(BadEvent):
        known.check("gw-a", payload(ev, key=TEST_KEY))


def test_listed_gateways_with_keys_from_env_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = _owner_only(tmp_path / "b.key", OTHER_KEY.decode())
    monkeypatch.setenv("SALTGW_TEST_GW_C", TEST_KEY.decode())
    cfg = _cfg(tmp_path, gateways=[{"id": "gw-b", "key_file": str(f)},
                                   {"id": "gw-c", "key_env": "SALTGW_TEST_GW_C"}])  # fmt: skip
    known = KnownGateways.from_config(cfg)
    assert known.ids == ["gw-a", "gw-b", "gw-c"]
    known.check("gw-b", payload(_event("gw-b"), key=OTHER_KEY))
    known.check("gw-c", payload(_event("gw-c"), key=TEST_KEY))
    monkeypatch.delenv("SALTGW_TEST_GW_C")
    with pytest.raises(SecretError, match="key of gateway 'gw-c': environment variable"):
        KnownGateways.from_config(cfg)


def test_a_listed_gateway_needs_a_key_and_is_listed_once(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="gateway 'gw-b': give key_env or key_file"):
        _cfg(tmp_path, gateways=[{"id": "gw-b"}])
    twice = [{"id": "gw-b", "key_env": "X"}, {"id": "gw-b", "key_env": "Y"}]
    with pytest.raises(ValidationError, match="id listed twice: gw-b"):
        _cfg(tmp_path, gateways=twice)


# -- the journal signs once, as it stores ------------------------------------------------------
def test_the_journal_stores_signed_payloads_valid_by_the_envelope_schema(tmp_path: Path) -> None:
    origin = Origin("gw-a", "8035", "daiyue", "L1")
    data, device = _complete("pack.bag", {"code": "8035J0001"}, None)
    draft = EventDraft("pack.bag", datetime(2026, 11, 22, tzinfo=UTC), data, device=device,
                       batch="B1")  # fmt: skip
    with Journal(tmp_path / "j.db", origin, signer=EnvelopeSigner("gw-a", TEST_KEY)) as j:
        (ev,) = j.append([draft]).result(10)
        reader = j.reader()
        (row,) = reader.after(0, 10)
        reader.close()
    KnownGateways({"gw-a": TEST_KEY}).check("gw-a", row.payload)
    assert signed_part(row.payload) == (ev.to_json(), mac(TEST_KEY, ev.to_json()))
    obj = json.loads(row.payload)
    validate_event(obj, strict=True)  # sig is part of the documented envelope
    assert Event.from_json(row.payload) == ev
    with sqlite3.connect(tmp_path / "j.db") as db:  # what replays send: the same bytes
        assert db.execute("SELECT payload FROM events").fetchone()[0] == row.payload


def test_a_group_readable_generated_key_is_refused_not_regenerated(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    event_key(cfg)
    path = default_key_path(Path(cfg.journal.path))
    os.chmod(path, 0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        event_key(cfg)
