"""MES commands (gateway/commands.py): validation, the writes they make, and every refusal —
against a driver double, no network."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import DeviceFault, DeviceOffline, Reading, TagValue, WriteRejected
from gateway.command_auth import Authoriser
from gateway.commands import CommandMap, CommandRejected, CommandRouter, parse_command
from gateway.supervisor import DeviceState, DeviceSupervisor, State
from gateway.topics import Topics

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-1")
CMD = "salt/v1/8035/daiyue/L1/cmd/plc1"
MAP = {
    "start_batch": {
        "batch": "cmd_batch",
        "product": "cmd_product",
        "shift": "cmd_shift",
        "trigger": "cmd_start",
    },
    "end_batch": {"trigger": "cmd_end"},
    "set_batch": {"batch": "batch_number"},
}


class FakePlc:
    """A WritableDriver double that records writes and can be told to fail."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, TagValue]] = []
        self.fail_on: str | None = None
        self.error: Exception = DeviceFault("PLC said BadNotWritable")

    async def connect(self) -> None: ...

    async def read(self) -> Reading:
        await asyncio.sleep(3600)
        raise AssertionError

    async def close(self) -> None: ...

    async def write(self, tag: str, value: TagValue) -> None:
        if tag == self.fail_on:
            raise self.error
        self.writes.append((tag, value))


class ReadOnly:
    async def connect(self) -> None: ...

    async def read(self) -> Reading:
        raise AssertionError

    async def close(self) -> None: ...


def supervisor(device: str, driver: Any, state: State | None = State.ONLINE) -> DeviceSupervisor:
    async def on_reading(r: Reading) -> None: ...

    sup = DeviceSupervisor(device, driver, on_reading, lambda s, p: None)
    if state is not None:
        sup.state = DeviceState(device, state, None if state == State.ONLINE else "link lost")
    return sup


class Line:
    def __init__(self, plc_state: State | None = State.ONLINE, batch: str | None = None) -> None:
        self.plc = FakePlc()
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.router = CommandRouter(
            TOPICS,
            UTC,
            lambda topic, body: self.sent.append((topic, json.loads(body))),
            {"plc1": CommandMap.model_validate(MAP)},
            current_batch=lambda: batch,
            auth=Authoriser.open(),  # these tests are about what runs; who may: command_auth
        )
        self.router.attach(supervisor("plc1", self.plc, plc_state))
        self.router.attach(supervisor("cw1", ReadOnly()))
        self.router.attach(supervisor("plc2", FakePlc()))  # no command map

    def send(self, payload: Any, topic: str = CMD, retained: bool = False) -> dict[str, Any]:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return asyncio.run(self.router.handle(topic, raw, retained))


def test_start_batch_writes_parameters_then_the_trigger() -> None:
    line = Line()
    cmd = {"id": "c-1", "command": "start_batch", "batch": " 20261122-L1-01 ", "product": "盐"}
    resp = line.send(cmd)
    assert resp["status"] == "accepted" and resp["reason"] is None
    assert (resp["id"], resp["command"], resp["device"]) == ("c-1", "start_batch", "plc1")
    assert line.plc.writes == [
        ("cmd_batch", "20261122-L1-01"),
        ("cmd_product", "盐"),
        ("cmd_start", True),
    ]
    topic, body = line.sent[-1]
    assert topic == "salt/v1/8035/daiyue/L1/cmd/plc1/response" and body == resp
    assert resp["ts"].endswith("+00:00")


def test_end_and_set_batch() -> None:
    line = Line(batch="B1")
    assert line.send({"id": "1", "command": "end_batch", "batch": "B1"})["status"] == "accepted"
    assert line.send({"id": "2", "command": "set_batch", "batch": "B2"})["status"] == "accepted"
    assert line.plc.writes == [("cmd_end", True), ("batch_number", "B2")]
    assert (line.router.accepted, line.router.rejected) == (2, 0)


def test_end_batch_without_trigger_clears_the_batch_tag() -> None:
    line = Line()
    line.router.devices["plc1"].commands = CommandMap.model_validate(
        {"end_batch": {"batch": "batch_number"}}
    )
    assert line.send({"id": "1", "command": "end_batch"})["status"] == "accepted"
    assert line.plc.writes == [("batch_number", "")]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"start please", "payload is not JSON"),
        (b"\xff\xfe", "payload is not JSON"),
        ([1, 2], "must be a JSON object, not list"),
        ({"id": "x"}, "missing field 'command'"),
        (
            {"id": "x", "command": "stop_line"},
            "unknown command 'stop_line' (known: close_partial, end_batch",
        ),
        ({"id": "x", "command": "start_batch"}, "start_batch: missing field 'batch'"),
        ({"command": "end_batch"}, "end_batch: missing field 'id'"),
        ({"id": "x", "command": "start_batch", "batch": "  "}, "batch: String should"),
        ({"id": "x", "command": "set_batch", "batch": 42}, "batch: Input should be a valid"),
        ({"id": "x", "command": "set_batch", "batch": "B", "prodcut": "y"}, "unknown field"),
        ({"id": "x", "command": "start_batch", "batch": "B" * 65}, "at most 64 characters"),
    ],
)
def test_malformed_commands_are_rejected_with_the_reason(payload: Any, reason: str) -> None:
    line = Line()
    resp = line.send(payload)
    assert resp["status"] == "rejected" and reason in resp["reason"], resp["reason"]
    assert line.plc.writes == []
    if isinstance(payload, dict) and "id" in payload:
        assert resp["id"] == payload["id"]  # the response can be matched even when refused
    assert line.sent[-1][0].endswith("/cmd/plc1/response")


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("salt/v1/8035/daiyue/L1/cmd/nope", "no device 'nope' on this line (devices: cw1, plc1"),
        ("salt/v1/8035/daiyue/L1/cmd/plc2", "device 'plc2' takes no commands"),
        ("salt/v1/8035/daiyue/L1/cmd/cw1", "takes no commands"),
    ],
)
def test_commands_for_devices_that_cannot_take_them(topic: str, reason: str) -> None:
    line = Line()
    resp = line.send({"id": "x", "command": "set_batch", "batch": "B"}, topic=topic)
    assert resp["status"] == "rejected" and reason in resp["reason"]
    assert line.sent[-1][0] == topic + "/response"


def test_a_command_the_device_is_not_configured_for() -> None:
    line = Line()
    line.router.devices["plc1"].commands = CommandMap.model_validate(
        {"set_batch": {"batch": "batch_number"}}
    )
    resp = line.send({"id": "x", "command": "end_batch"})
    assert "has no 'end_batch' command (it takes: set_batch)" in resp["reason"]


def test_a_driver_that_cannot_write() -> None:
    line = Line()
    line.router.devices["cw1"].commands = CommandMap.model_validate({"set_batch": {"batch": "b"}})
    resp = line.send({"id": "x", "command": "set_batch", "batch": "B"}, topic=CMD[:-4] + "cw1")
    assert "its driver cannot write tags" in resp["reason"]


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (State.OFFLINE, "device 'plc1' is offline: link lost"),
        (State.FAULT, "device 'plc1' has a fault: link lost"),
        (None, "device 'plc1' is not connected yet"),
    ],
)
def test_a_device_that_is_not_online(state: State | None, reason: str) -> None:
    line = Line(plc_state=state)
    resp = line.send({"id": "x", "command": "set_batch", "batch": "B"})
    assert resp["status"] == "rejected" and resp["reason"] == reason
    assert line.plc.writes == []


@pytest.mark.parametrize(
    "error",
    [
        DeviceFault("PLC said BadNotWritable"),
        DeviceOffline("connection lost"),
        WriteRejected("tag 'cmd_product' is not writable"),
    ],
)
def test_a_failing_write_is_a_rejection_saying_what_was_written(error: Exception) -> None:
    line = Line()
    line.plc.fail_on, line.plc.error = "cmd_product", error
    resp = line.send({"id": "x", "command": "start_batch", "batch": "B", "product": "P"})
    assert resp["status"] == "rejected"
    assert resp["reason"] == f"write failed: {error} (written before: cmd_batch)"
    assert line.plc.writes == [("cmd_batch", "B")]  # the trigger was never set


def test_retained_and_wrong_batch_commands_are_not_executed() -> None:
    line = Line(batch="B1")
    retained = line.send({"id": "r", "command": "end_batch"}, retained=True)
    assert "retained command not executed" in retained["reason"]
    wrong = line.send({"id": "w", "command": "end_batch", "batch": "B7"})
    assert "batch 'B7' is not the running batch (B1)" in wrong["reason"]
    assert line.plc.writes == []
    assert line.send(b"") == {} and len(line.sent) == 2  # deleting a retained one: no answer


def test_command_maps_need_their_tags() -> None:
    CommandMap.model_validate(MAP)
    for bad, says in (
        ({"start_batch": {"trigger": "t"}}, "start_batch cannot take effect: bind a method, or"),
        ({"start_batch": {"batch": "b"}}, "a batch tag and a trigger tag"),  # issue 17
        ({"set_batch": {}}, "set_batch cannot take effect: bind a method or a batch tag"),
        ({"end_batch": {"product": "p"}}, "end_batch cannot take effect: bind a method, a trig"),
        ({"stop": {"trigger": "t"}}, "Extra inputs are not permitted"),
    ):
        with pytest.raises(ValidationError, match=says):
            CommandMap.model_validate(bad)


def test_parse_command_returns_the_typed_command() -> None:
    cmd_id, cmd = parse_command(b'{"id": "7", "command": "set_batch", "batch": "B"}')
    assert cmd_id == "7" and cmd.command == "set_batch" and cmd.batch == "B"
    with pytest.raises(CommandRejected):
        parse_command(b"null")


def test_messages_from_the_mqtt_thread_run_on_the_gateway_loop() -> None:
    line = Line()

    async def scenario() -> None:
        line.router.bind(asyncio.get_running_loop())
        payload = json.dumps({"id": "t", "command": "set_batch", "batch": "B5"}).encode()
        await asyncio.to_thread(line.router.on_message, CMD, payload, False)
        for _ in range(100):
            if line.sent:
                break
            await asyncio.sleep(0.01)
        await line.router.close()

    asyncio.run(scenario())
    assert line.sent and line.sent[0][1]["status"] == "accepted"
    assert line.plc.writes == [("batch_number", "B5")]


def test_sparkplug_dcmd_writes_through_the_router_under_the_allow_list() -> None:
    """The gateway's DCMD sink (gateway/runtime.py): CommandMapSink's allow-list, then
    CommandRouter.write_tag under the device's lock: only command-map tags, only mode open,
    only an online device whose driver writes."""
    from gateway.command_auth import CommandAuthSection
    from gateway.telemetry.sparkplug import CommandMapSink, CommandRefused

    line = Line()
    maps = {"plc1": CommandMap.model_validate(MAP)}

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        sink = CommandMapSink(maps, CommandAuthSection(mode="open"), line.router.write_tag, loop)
        out: list[str] = []
        await asyncio.wrap_future(sink.write("plc1", "cmd_batch", "B-7"))
        for device, tag in (("plc1", "not_a_command_tag"), ("cw1", "weight")):
            try:
                sink.write(device, tag, 1)
            except CommandRefused as exc:
                out.append(str(exc))
        line.router.devices["plc1"].supervisor.state = DeviceState("plc1", State.OFFLINE, "x")
        with pytest.raises(CommandRejected, match="is offline"):
            await asyncio.wrap_future(sink.write("plc1", "cmd_batch", "B-8"))
        closed = CommandMapSink(maps, None, line.router.write_tag, loop)
        with pytest.raises(CommandRefused, match="closed"):
            closed.write("plc1", "cmd_batch", "B-9")
        return out

    refusals = asyncio.run(scenario())
    assert line.plc.writes == [("cmd_batch", "B-7")]
    assert "not written by any of its commands" in refusals[0]
    assert "has no command map" in refusals[1]
