"""Operator commands on a case scanner's topic (close_partial, unpack, resync): routed by the
command router to the real packing profile and trace store, answered accepted or rejected with
the reason, and whatever the action produced is handed on to be journaled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.command_auth import Authoriser
from gateway.commands import CommandRouter
from gateway.events import EventDraft
from gateway.topics import Topics
from gateway.traceline import close_trace_lines
from tests.unit.test_trace_profiles import TZ, Line, bag

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-test-1")


class Harness:
    def __init__(self, line: Line) -> None:
        self.line = line
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.accepted: list[EventDraft] = []

        async def accept(drafts: list[EventDraft]) -> None:
            self.accepted.extend(drafts)

        self.router = CommandRouter(
            TOPICS,
            TZ,
            lambda t, b: self.published.append((t, json.loads(b))),
            {},
            accept=accept,
            auth=Authoriser.open(),  # who may send them: tests/unit/test_command_auth.py
        )

    def send(self, device: str, cmd: dict[str, Any] | bytes) -> dict[str, Any]:
        payload = cmd if isinstance(cmd, bytes) else json.dumps(cmd).encode()
        return asyncio.run(self.router.handle(f"{TOPICS.line_root}/cmd/{device}", payload))


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    line = Line(tmp_path / "trace.db")
    line.add("scan1", "bag_scanner", sku="s400")
    packer = line.add("case1", "case_packer", bags_per_case={"s400": 3, "default": 3})
    harness = Harness(line)
    harness.router.attach_operable(packer)
    yield harness
    close_trace_lines(line.store)


def _short_case(h: Harness) -> None:
    h.line.scan("scan1", bag(1))
    h.line.scan("scan1", None)
    h.line.scan("scan1", bag(2))
    (short,) = h.line.scan("case1", "8035CASE000009")
    assert short.data["reason"] == "short_case"


def test_close_partial_binds_the_short_case_and_is_answered(h: Harness) -> None:
    _short_case(h)
    resp = h.send(
        "case1",
        {
            "id": "m-1",
            "command": "close_partial",
            "code": "8035CASE000009",
            "reason": "bag burst",
            "operator": "wang",
        },
    )
    assert resp["status"] == "accepted", resp
    (ev,) = h.accepted
    assert ev.type == "pack.case"
    assert ev.data["children"] == [bag(1), bag(2)]
    assert ev.data["partial_reason"] == "bag burst" and ev.data["operator"] == "wang"
    topic, body = h.published[-1]
    assert topic.endswith("/cmd/case1/response") and body["id"] == "m-1"


def test_unpack_frees_the_children_for_rework(h: Harness) -> None:
    _short_case(h)
    h.send(
        "case1",
        {"id": "m-1", "command": "close_partial", "code": "8035CASE000009", "reason": "bag burst"},
    )
    resp = h.send(
        "case1",
        {
            "id": "m-2",
            "command": "unpack",
            "code": "8035CASE000009",
            "reason": "torn label",
            "operator": "li",
        },
    )
    assert resp["status"] == "accepted", resp
    ev = h.accepted[-1]
    assert ev.type == "pack.unpack"
    assert ev.data["children"] == [bag(1), bag(2)]


def test_a_refused_action_is_rejected_with_the_reason_and_still_journaled(h: Harness) -> None:
    resp = h.send(
        "case1", {"id": "m-3", "command": "unpack", "code": "8035CASE404", "reason": "rework"}
    )
    assert resp["status"] == "rejected"
    assert resp["reason"]
    assert h.accepted[-1].type == "alarm.aggregation"


@pytest.mark.parametrize(
    ("device", "cmd", "why"),
    [
        ("scan1", {"id": "x", "command": "resync"}, "takes no operator commands"),
        ("case1", {"id": "x", "command": "close_partial", "code": "8035CASE1"}, "'reason'"),
        ("case1", {"id": "x", "command": "unpack", "code": "", "reason": "r"}, "code"),
        ("case1", b"not json", "not JSON"),
    ],
)
def test_bad_operator_commands_are_rejected(
    h: Harness, device: str, cmd: dict[str, Any] | bytes, why: str
) -> None:
    resp = h.send(device, cmd)
    assert resp["status"] == "rejected"
    assert why in resp["reason"]
    assert h.accepted == []
