"""Command authorisation (gateway/command_auth.py): only listed issuers, only their commands on
their devices, signed with their key, fresh and never replayed — and nothing is written to the
PLC for a refused command."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.secrets import SecretError
from gateway.command_auth import Authoriser, CommandAuthSection, Receiver, signing_bytes
from gateway.commands import CommandMap, CommandRouter
from tests.unit.test_commands import CMD, MAP, TOPICS, FakePlc, supervisor

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
L1 = Receiver(TOPICS.enterprise, TOPICS.site, TOPICS.line, TOPICS.gateway)
KEY = "k3y-of-mes-01"


def _cfg(tmp: Path, **over: Any) -> CommandAuthSection:
    key = tmp / "mes01.key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    raw: dict[str, Any] = {
        "issuers": [
            {
                "name": "mes-01",
                "key_file": str(key),
                "allow": [{"commands": ["start_batch", "end_batch"], "devices": ["plc1"]}],
            },
            {
                "name": "hmi-2",
                "key_env": "HMI2_KEY",
                "allow": [{"commands": ["set_batch"]}],
            },
        ],
        **over,
    }
    return CommandAuthSection.model_validate(raw)


class AuthLine:
    def __init__(self, auth: Authoriser) -> None:
        self.plc = FakePlc()
        self.router = CommandRouter(
            TOPICS,
            UTC,
            lambda topic, body: None,
            {"plc1": CommandMap.model_validate(MAP)},
            auth=auth,
        )
        self.router.attach(supervisor("plc1", self.plc))

    def send(self, obj: dict[str, Any]) -> dict[str, Any]:
        return asyncio.run(self.router.handle(CMD, json.dumps(obj).encode(), False))


def signed(
    obj: dict[str, Any],
    key: str = KEY,
    ts: datetime = NOW,
    to: Receiver = L1,
    device: str = "plc1",
) -> dict[str, Any]:
    """``obj`` signed for ``device`` of gateway ``to`` (the receiver is signed, not sent)."""
    body = {**obj, "ts": ts.isoformat()}
    mac = hmac.new(key.encode(), signing_bytes(body, to.fields(device)), hashlib.sha256)
    body["sig"] = mac.hexdigest()
    return body


@pytest.fixture
def line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AuthLine:
    monkeypatch.setenv("HMI2_KEY", "hmi-secret")
    return AuthLine(
        Authoriser(_cfg(tmp_path), L1, tmp_path / "seen.db", clock=lambda: NOW.timestamp())
    )


START = {"id": "c-1", "command": "start_batch", "batch": "20261122-L1-01", "issuer": "mes-01"}


def test_a_signed_command_from_an_allowed_issuer_runs(line: AuthLine) -> None:
    resp = line.send(signed(START))
    assert resp["status"] == "accepted", resp
    assert line.plc.writes[0] == ("cmd_batch", "20261122-L1-01")


REFUSALS: list[tuple[str, Any, str]] = [
    ("no issuer", {k: v for k, v in START.items() if k != "issuer"}, "missing field 'issuer'"),
    ("unknown issuer", {**START, "issuer": "intruder"}, "issuer 'intruder' is not listed"),
    ("unsigned", START, "missing field 'sig'"),
    ("wrong key", signed(START, key="guess"), "bad signature for issuer 'mes-01'"),
    (
        "field changed after signing",
        {**signed(START), "batch": "20261122-L1-99"},
        "bad signature",
    ),
    ("stale", signed(START, ts=NOW - timedelta(minutes=10)), "600 s old by the gateway's clock"),
    ("from the future", signed(START, ts=NOW + timedelta(minutes=5)), "300 s in the future"),
    (
        "ts without offset",
        {**START, "ts": "2026-11-22T08:00:00", "sig": "00"},
        "bad signature",  # the signature is checked first: nothing about the content leaks
    ),
    (
        "command not granted",
        signed({**START, "command": "set_batch"}),
        "may not send set_batch to device 'plc1'",
    ),
]


@pytest.mark.parametrize(("name", "obj", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_say_only_not_authorised_log_the_reason_and_write_nothing(
    line: AuthLine, name: str, obj: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    resp = line.send(obj)
    assert resp["status"] == "rejected", name
    assert resp["reason"] == "not authorised", resp  # nothing more for the sender
    assert any(reason in r.getMessage() for r in caplog.records), caplog.text  # the log has it
    assert line.plc.writes == []


def test_a_replayed_command_is_refused(line: AuthLine) -> None:
    cmd = signed(START)
    assert line.send(cmd)["status"] == "accepted"
    again = line.send(cmd)
    assert again == {**again, "status": "rejected", "reason": "not authorised"}
    assert len([w for w in line.plc.writes if w[0] == "cmd_batch"]) == 1


def test_an_issuer_granted_every_device_and_a_key_from_the_environment(line: AuthLine) -> None:
    cmd = {"id": "h-1", "command": "set_batch", "batch": "B2", "issuer": "hmi-2"}
    assert line.send(signed(cmd, key="hmi-secret"))["status"] == "accepted"
    assert ("batch_number", "B2") in line.plc.writes


def test_unsigned_issuers_only_when_signatures_are_not_required(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="issuer 'acl-only' has no key_env or key_file"):
        CommandAuthSection.model_validate(
            {"issuers": [{"name": "acl-only", "allow": [{"commands": ["end_batch"]}]}]}
        )
    cfg = CommandAuthSection.model_validate(
        {
            "require_signature": False,
            "issuers": [{"name": "acl-only", "allow": [{"commands": ["end_batch"]}]}],
        }
    )
    line = AuthLine(Authoriser(cfg))
    resp = line.send({"id": "e-1", "command": "end_batch", "issuer": "acl-only"})
    assert resp["status"] == "accepted", resp


def test_keys_are_read_at_start_and_must_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HMI2_KEY", raising=False)
    with pytest.raises(SecretError, match="'HMI2_KEY' is not set"):
        Authoriser(_cfg(tmp_path))
    monkeypatch.setenv("HMI2_KEY", "x")
    cfg = _cfg(tmp_path)
    os.chmod(tmp_path / "mes01.key", 0o644)
    with pytest.raises(SecretError, match=r"mode 0644.*chmod 600"):
        Authoriser(cfg)


def test_duplicate_issuers_are_a_config_error(tmp_path: Path) -> None:
    issuer = {"name": "a", "key_env": "K", "allow": [{"commands": ["resync"]}]}
    with pytest.raises(ValidationError, match="listed twice"):
        CommandAuthSection.model_validate({"issuers": [issuer, issuer]})
