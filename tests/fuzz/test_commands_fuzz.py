"""Fuzzing MES commands (gateway/commands.py) through :class:`CommandRouter`, the code that
receives every message on ``…/{line}/cmd/{device}``.

Whatever a client publishes there — arbitrary bytes, JSON of the wrong shape or types, unknown
commands, megabytes, JSON nested a hundred thousand deep, lone surrogates — the router answers
each non-empty message with exactly one response on ``…/cmd/{device}/response``: valid UTF-8
JSON, a bounded size, ``rejected`` with a reason that says what is wrong, and no exception
escapes. Nothing is written to a device unless the command was a well-formed write command for
that device and was accepted. The device side is the test doubles below (a PLC driver recording
its writes, a packing profile recording operator actions); the router itself is the real one.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from drivers.base import Reading, TagValue
from gateway.command_auth import Authoriser, CommandAuthSection
from gateway.commands import COMMANDS, WRITE_COMMANDS, CommandMap, CommandRouter
from gateway.events import EventDraft
from gateway.supervisor import DeviceState, DeviceSupervisor, State
from gateway.topics import Topics
from tests.fuzz.hypothesis_settings import fuzz_settings

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-1")
ROOT = "salt/v1/8035/daiyue/L1/cmd"
MAP = {
    "start_batch": {"batch": "cmd_batch", "product": "cmd_product", "trigger": "cmd_start"},
    "end_batch": {"trigger": "cmd_end"},
    "set_batch": {"batch": "batch_number"},
}
DEVICES = ["plc1", "plc2", "cw1", "case1", "nope", "", "plc1/extra", "+", "#", "盐"]
MAX_RESPONSE_BYTES = 4096
RESPONSE_KEYS = {"id", "status", "reason", "command", "device", "ts"}


class RecordingPlc:
    """A WritableDriver double: records each write."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, TagValue]] = []

    async def connect(self) -> None: ...

    async def read(self) -> Reading:
        raise AssertionError("not read in these tests")

    async def close(self) -> None: ...

    async def write(self, tag: str, value: TagValue) -> None:
        self.writes.append((tag, value))


class ReadOnlyDevice:
    async def connect(self) -> None: ...

    async def read(self) -> Reading:
        raise AssertionError("not read in these tests")

    async def close(self) -> None: ...


class RecordingPacker:
    """An Operable double (a case packer): records each operator action."""

    device = "case1"

    def __init__(self) -> None:
        self.actions: list[str] = []

    def close_partial(
        self, code: str, reason: str, operator: str | None, now: datetime
    ) -> list[EventDraft]:
        self.actions.append("close_partial")
        return []

    def unpack(
        self, code: str, reason: str, operator: str | None, now: datetime
    ) -> list[EventDraft]:
        self.actions.append("unpack")
        return []

    def resync(self, now: datetime) -> list[EventDraft]:
        self.actions.append("resync")
        return []


def _supervisor(device: str, driver: Any, state: State) -> DeviceSupervisor:
    async def on_reading(_: Reading) -> None: ...

    sup = DeviceSupervisor(device, driver, on_reading, lambda s, p: None)
    sup.state = DeviceState(device, state, None if state == State.ONLINE else "link lost")
    return sup


class Line:
    """A router wired to the doubles, recording what it publishes."""

    def __init__(self, auth: Authoriser | None = None) -> None:
        self.plc, self.offline_plc, self.packer = RecordingPlc(), RecordingPlc(), RecordingPacker()
        self.sent: list[tuple[str, bytes]] = []
        self.journaled: list[EventDraft] = []

        async def accept(drafts: list[EventDraft]) -> None:
            self.journaled.extend(drafts)

        self.router = CommandRouter(
            TOPICS,
            UTC,
            lambda topic, body: self.sent.append((topic, body)),
            {"plc1": CommandMap.model_validate(MAP), "plc2": CommandMap.model_validate(MAP)},
            current_batch=lambda: "B1",
            accept=accept,
            auth=auth if auth is not None else Authoriser.open(),
        )
        self.router.attach(_supervisor("plc1", self.plc, State.ONLINE))
        self.router.attach(_supervisor("plc2", self.offline_plc, State.OFFLINE))
        self.router.attach(_supervisor("cw1", ReadOnlyDevice(), State.ONLINE))
        self.router.attach_operable(self.packer)

    def check(
        self, messages: list[tuple[str, bytes, bool]], responses: list[dict[str, Any]]
    ) -> None:
        """What must hold after ``messages`` were handled, whatever they were."""
        non_empty = [m for m in messages if m[1]]
        assert len(self.sent) == len(non_empty) == self.router.accepted + self.router.rejected
        assert len(responses) == len(messages)
        sent = iter(self.sent)
        for (topic, payload, retained), response in zip(messages, responses, strict=True):
            if not payload:
                assert response == {}
                continue
            where, body = next(sent)
            device = topic.rsplit("/", 1)[-1]
            assert where == TOPICS.command_response(device)
            assert len(body) <= MAX_RESPONSE_BYTES, len(body)
            assert json.loads(body.decode("utf-8")) == response
            assert set(response) == RESPONSE_KEYS and response["device"] == device
            if response["status"] == "rejected":
                assert isinstance(response["reason"], str) and response["reason"].strip()
            else:
                assert response["status"] == "accepted" and response["reason"] is None
                assert not retained and response["command"] in COMMANDS
        accepted_writes = [
            r for r in responses if r.get("status") == "accepted" and r["command"] in WRITE_COMMANDS
        ]
        # a write only for an accepted write command on plc1; never on the offline plc2
        assert bool(self.plc.writes) == bool(accepted_writes)
        assert all(r["device"] == "plc1" for r in accepted_writes)
        assert not self.offline_plc.writes
        assert {tag for tag, _ in self.plc.writes} <= CommandMap.model_validate(MAP).tags()
        operated = [
            r
            for r in responses
            if r.get("status") == "accepted" and r["command"] not in WRITE_COMMANDS
        ]
        assert len(self.packer.actions) == len(operated)

    def run(self, messages: list[tuple[str, bytes, bool]]) -> list[dict[str, Any]]:
        async def all_of_them() -> list[dict[str, Any]]:
            return [await self.router.handle(t, p, r) for t, p, r in messages]

        responses = asyncio.run(all_of_them())
        self.check(messages, responses)
        return responses


# -- payloads -----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "id",
    "command",
    "batch",
    "product",
    "shift",
    "code",
    "reason",
    "operator",
    "issuer",
    "ts",
    "sig",
    "prodcut",
    "",
]
odd_strings = st.sampled_from(
    [
        "",
        " ",
        "B1",
        "20261122-L1-09",
        "8035K7Q2M9X4TZ",
        "\ud800",
        "\x00",
        "盐",
        "x" * 129,
        "y" * 5000,
        "mes",
        "2026-11-22T08:00:00+08:00",
    ]
)


@st.composite
def command_like(draw: Any) -> dict[str, Any]:
    """An object that looks like a command: known or unknown name, fields right or wrong."""
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        obj["id"] = draw(odd_strings | json_values)
    if draw(st.integers(0, 9)):
        obj["command"] = draw(st.sampled_from(COMMANDS) | odd_strings | json_values)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=5)):
        obj[key] = draw(odd_strings | json_values)
    return obj


@st.composite
def valid_commands(draw: Any) -> dict[str, Any]:
    name = draw(st.sampled_from(COMMANDS))
    obj: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=12)), "command": name}
    if name in ("start_batch", "set_batch") or (name == "end_batch" and draw(st.booleans())):
        obj["batch"] = draw(st.sampled_from(["B1", "B2", "20261122-L1-09"]))
    if name in ("close_partial", "unpack"):
        obj["code"], obj["reason"] = "8035K7Q2M9X4TZ", "dented"
    return obj


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"id": "n", "command": "set_batch", "batch": ' + b"[" * depth  # never closed


payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(_dumps, json_values),
    st.builds(_dumps, command_like()),
    st.builds(lambda obj: json.dumps(obj).encode(), command_like()),  # \u escapes, surrogates
    st.builds(_dumps, valid_commands()),
    st.builds(_nested, st.integers(1, 120_000), st.sampled_from(["array", "object", "unclosed"])),
    st.builds(  # huge: a command name, an id or a batch of up to 2 MB
        lambda n, field: _dumps({"id": "h", "command": "set_batch", "batch": "B", field: "x" * n}),
        st.integers(10_000, 2_000_000),
        st.sampled_from(["command", "id", "batch", "junk"]),
    ),
    st.builds(
        lambda obj, enc: json.dumps(obj).encode(enc),
        valid_commands(),
        st.sampled_from(["utf-16", "utf-32", "utf-8-sig"]),
    ),
)
topics = st.sampled_from(DEVICES).map(lambda d: f"{ROOT}/{d}")
messages = st.lists(st.tuples(topics, payloads, st.booleans()), min_size=1, max_size=4)


@fuzz_settings(250)
@given(messages)
@example([(f"{ROOT}/plc1", b"[" * 100_000 + b"]" * 100_000, False)])  # RecursionError escaped
@example([(f"{ROOT}/plc1", b'{"id": "\\ud800", "command": "x"}', False)])  # UnicodeEncodeError
@example(  # a 1 MB unknown command name was echoed into the response and the log
    [(f"{ROOT}/plc1", b'{"id": "a", "command": "' + b"x" * 1_000_000 + b'"}', False)]
)
@example(  # 5000 unknown fields: every one named in the reason
    [
        (
            f"{ROOT}/plc1",
            _dumps(
                {
                    "id": "a",
                    "command": "set_batch",
                    "batch": "B",
                    **{f"k{i}": 0 for i in range(5000)},
                }
            ),
            False,
        )
    ]
)
def test_every_message_gets_one_bounded_response_and_no_stray_write(
    msgs: list[tuple[str, bytes, bool]],
) -> None:
    Line().run(msgs)


@fuzz_settings(150)
@given(messages, st.sampled_from(["mes", "shift-lead", "", None]))
def test_with_an_allow_list_nothing_unlisted_runs(
    msgs: list[tuple[str, bytes, bool]], issuer: str | None
) -> None:
    """With ``commands:`` configured (issuer mes may start and end batches on plc1, unsigned),
    commands naming another issuer, or none, are refused like any other bad command."""
    auth = Authoriser(
        CommandAuthSection.model_validate(
            {
                "require_signature": False,
                "issuers": [
                    {
                        "name": "mes",
                        "allow": [{"commands": ["start_batch", "end_batch"], "devices": ["plc1"]}],
                    }
                ],
            }
        )
    )
    stamped = []
    for topic, payload, retained in msgs:
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and issuer is not None:
            obj["issuer"] = issuer
            payload = _dumps(obj)
        stamped.append((topic, payload, retained))
    responses = Line(auth).run(stamped)
    for (topic, payload, _), response in zip(stamped, responses, strict=True):
        if response.get("status") == "accepted":
            assert json.loads(payload)["issuer"] == "mes" and topic == f"{ROOT}/plc1"
            assert response["command"] in ("start_batch", "end_batch")


@fuzz_settings(40)
@given(messages)
def test_messages_from_the_mqtt_thread_are_answered_and_raise_nothing(
    msgs: list[tuple[str, bytes, bool]],
) -> None:
    """The forwarder thread's entry point: on_message hands each message to the loop; every
    non-empty one is answered and no task dies with an exception."""
    line = Line()
    errors: list[dict[str, Any]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        line.router.bind(loop)
        for topic, payload, retained in msgs:
            await asyncio.to_thread(line.router.on_message, topic, payload, retained)
        want = sum(1 for m in msgs if m[1])
        for _ in range(500):  # bounded: 5 s
            if len(line.sent) >= want:
                break
            await asyncio.sleep(0.01)
        await line.router.close()

    asyncio.run(scenario())
    assert not errors, errors
    assert len(line.sent) == sum(1 for m in msgs if m[1])
    for _, body in line.sent:
        assert len(body) <= MAX_RESPONSE_BYTES
        assert set(json.loads(body.decode("utf-8"))) == RESPONSE_KEYS
