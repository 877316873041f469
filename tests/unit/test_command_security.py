"""Issue 15, MES commands (docs/security.md, "Findings of issue 15"): closed without a
``commands:`` section, signatures bound to the receiving gateway and device, used ids kept
across a restart, refusals that tell a probe nothing, and a bounded queue per device."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.command_auth import Authoriser, CommandAuthSection, Receiver, signing_bytes
from gateway.commands import MAX_WAITING, CommandMap, CommandRouter
from gateway.topics import Topics
from tests.unit.test_commands import MAP, FakePlc, supervisor

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
KEY = "shared-key-of-mes"
L1 = Topics("salt/v1", "8035", "daiyue", "L1", "gw-l1")
L2 = Topics("salt/v1", "8035", "daiyue", "L2", "gw-l2")
START = {"id": "c-1", "command": "start_batch", "batch": "20261122-L1-01", "issuer": "mes"}


def _receiver(t: Topics) -> Receiver:
    return Receiver(t.enterprise, t.site, t.line, t.gateway)


def _section() -> CommandAuthSection:
    return CommandAuthSection.model_validate(
        {
            "issuers": [
                {
                    "name": "mes",
                    "key_env": "MES_KEY",
                    "allow": [{"commands": ["start_batch", "end_batch", "set_batch"]}],
                }
            ]
        }
    )


def signed(obj: dict[str, Any], to: Topics = L1, device: str = "plc1") -> dict[str, Any]:
    body = {**obj, "ts": NOW.isoformat()}
    msg = signing_bytes(body, _receiver(to).fields(device))
    body["sig"] = hmac.new(KEY.encode(), msg, hashlib.sha256).hexdigest()
    return body


class Gw:
    """One line's command router, with the PLCs plc1 and plc2, over its own files."""

    def __init__(self, topics: Topics, auth: Authoriser | None) -> None:
        self.topics = topics
        self.plc, self.plc2 = FakePlc(), FakePlc()
        self.sent: list[dict[str, Any]] = []
        maps = {d: CommandMap.model_validate(MAP) for d in ("plc1", "plc2")}
        self.router = CommandRouter(
            topics, UTC, lambda t, b: self.sent.append(json.loads(b)), maps, auth=auth
        )
        self.router.attach(supervisor("plc1", self.plc))
        self.router.attach(supervisor("plc2", self.plc2))

    def send(self, obj: dict[str, Any], device: str = "plc1") -> dict[str, Any]:
        topic = f"{self.topics.line_root}/cmd/{device}"
        return asyncio.run(self.router.handle(topic, json.dumps(obj).encode(), False))


def _authoriser(topics: Topics, seen: Path) -> Authoriser:
    return Authoriser(_section(), _receiver(topics), seen, clock=lambda: NOW.timestamp())


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_KEY", KEY)


def test_without_a_commands_section_every_command_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Finding: an unsigned operator command ran on a gateway without ``commands:``."""
    caplog.set_level("INFO")
    gw = Gw(L1, None)  # what the gateway builds from a config without commands:
    gw.router.auth.announce()
    assert "MQTT commands are closed" in caplog.text  # the line at start
    for obj in (
        {"id": "u-1", "command": "start_batch", "batch": "B1"},
        {"id": "u-2", "command": "unpack", "code": "C1", "reason": "probe"},
        signed(START),  # even a well-signed one: nobody is listed
    ):
        resp = gw.send(obj)
        assert (resp["status"], resp["reason"]) == ("rejected", "not authorised"), resp
    assert gw.plc.writes == []
    assert "commands are closed: the config has no commands: section" in caplog.text


def test_open_mode_is_explicit_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    gw = Gw(L1, Authoriser(CommandAuthSection.model_validate({"mode": "open"})))
    gw.router.auth.announce()
    assert "MQTT COMMANDS ARE OPEN" in caplog.text
    assert gw.send({"id": "o-1", "command": "set_batch", "batch": "B1"})["status"] == "accepted"
    with pytest.raises(ValidationError, match="mode open takes no issuers"):
        CommandAuthSection.model_validate(
            {
                "mode": "open",
                "issuers": [{"name": "a", "key_env": "K", "allow": [{"commands": ["resync"]}]}],
            }
        )
    with pytest.raises(ValidationError, match="list at least one issuer"):
        CommandAuthSection.model_validate({})


def test_a_command_signed_for_one_line_fails_on_another_and_for_another_device(
    tmp_path: Path,
) -> None:
    """Finding: one signed start_batch ran on L1 and on L2, which shared the key."""
    l1 = Gw(L1, _authoriser(L1, tmp_path / "l1-commands.db"))
    l2 = Gw(L2, _authoriser(L2, tmp_path / "l2-commands.db"))
    cmd = signed(START, to=L1, device="plc1")
    assert l2.send(cmd)["reason"] == "not authorised"
    assert l1.send({**cmd, "id": cmd["id"]}, device="plc2")["reason"] == "not authorised"
    assert l2.plc.writes == [] and l1.plc2.writes == []
    assert l1.send(cmd)["status"] == "accepted"  # where it was signed for, it runs
    assert l1.plc.writes[0] == ("cmd_batch", "20261122-L1-01")


def test_a_replay_after_a_restart_is_refused(tmp_path: Path) -> None:
    """Finding: the replay memory was in RAM, so a restart accepted the same command again."""
    seen = tmp_path / "journal-commands.db"
    first = Gw(L1, _authoriser(L1, seen))
    cmd = signed(START)
    assert first.send(cmd)["status"] == "accepted"
    asyncio.run(first.router.close())  # the gateway stops
    restarted = Gw(L1, _authoriser(L1, seen))  # new authoriser and router over the same file
    resp = restarted.send(cmd)
    assert (resp["status"], resp["reason"]) == ("rejected", "not authorised")
    assert restarted.plc.writes == []
    fresh = restarted.send(signed({**START, "id": "c-2"}))
    assert fresh["status"] == "accepted"  # only the used id is refused


def test_a_probes_refusal_reveals_nothing_about_issuers_or_grants(tmp_path: Path) -> None:
    """Finding: an unsigned probe learnt an issuer's grants from the refusal."""
    gw = Gw(L1, _authoriser(L1, tmp_path / "seen.db"))
    probes = [
        {"id": "p", "command": "start_batch", "batch": "B"},  # no issuer
        {"id": "p", "command": "start_batch", "batch": "B", "issuer": "nobody"},
        {"id": "p", "command": "start_batch", "batch": "B", "issuer": "mes"},  # unsigned
        {**signed({**START, "id": "p"}), "sig": "0" * 64},  # bad signature
        {"id": "p", "command": "unpack", "code": "C", "reason": "r", "issuer": "mes"},
    ]
    answers = [{k: v for k, v in gw.send(p).items() if k not in ("ts", "command")} for p in probes]
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["reason"] == "not authorised"
    assert gw.plc.writes == []


def test_a_flood_of_commands_queues_at_most_max_waiting_per_device() -> None:
    """Finding: 5,000 commands queued 5,000 tasks, all to be written to the PLC."""
    n = 5000
    open_auth = Authoriser(CommandAuthSection.model_validate({"mode": "open"}))
    gw = Gw(L1, open_auth)
    release = asyncio.Event()

    async def slow_write(tag: str, value: Any) -> None:
        await release.wait()  # the PLC is slow: nothing finishes while the flood arrives
        gw.plc.writes.append((tag, value))

    gw.plc.write = slow_write  # type: ignore[method-assign]

    async def main() -> None:
        gw.router.bind(asyncio.get_running_loop())
        topic = f"{L1.line_root}/cmd/plc1"

        def flood() -> None:  # the MQTT forwarder thread
            for i in range(n):
                body = {"id": f"f-{i}", "command": "set_batch", "batch": f"B{i}"}
                gw.router.on_message(topic, json.dumps(body).encode(), False)

        t = threading.Thread(target=flood)
        t.start()
        for _ in range(2000):  # bounded: every command answered or waiting
            if len(gw.sent) >= n - MAX_WAITING:
                break
            assert len(gw.router._tasks) <= MAX_WAITING
            await asyncio.sleep(0.005)
        t.join(timeout=10)
        assert len(gw.router._tasks) <= MAX_WAITING
        release.set()
        await gw.router.close()

    asyncio.run(main())
    busy = [r for r in gw.sent if r["reason"] and r["reason"].startswith("busy:")]
    accepted = [r for r in gw.sent if r["status"] == "accepted"]
    assert len(gw.sent) == n
    assert len(accepted) <= MAX_WAITING and len(busy) == n - len(accepted)
    assert busy[0]["reason"] == f"busy: {MAX_WAITING} commands waiting for plc1"
    assert len({w for w in gw.plc.writes if w[0] == "batch_number"}) == len(accepted)
