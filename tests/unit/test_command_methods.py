"""MES commands bound to a device method (gateway/command_methods.py, gateway/commands.py):
the binding's rules, the call made from a command's fields, and how the device's answer
becomes the response — against a driver double; the real PLC: tests/integration/
test_opcua_methods.py."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.base import (
    DeviceFault,
    DeviceOffline,
    MethodCall,
    MethodDriver,
    MethodResult,
    Reading,
    TagValue,
    WritableDriver,
    WriteRejected,
)
from gateway.command_auth import Authoriser
from gateway.command_methods import MethodBinding
from gateway.commands import CommandMap, CommandRouter
from gateway.supervisor import DeviceState, DeviceSupervisor, State
from gateway.topics import Topics

TOPICS = Topics("salt/v1", "8035", "daiyue", "L1", "gw-1")
CMD = "salt/v1/8035/daiyue/L1/cmd/plc1"
START = {
    "object": {"node": "s=Line1"},
    "method": {"browse_path": "0:Objects/Line1/StartBatch"},
    "inputs": [
        {"field": "batch", "type": "String"},
        {"field": "product", "type": "String", "default": ""},
    ],
    "timeout_ms": 200,
}
MAP = {
    "start_batch": {"method": START},
    "end_batch": {"trigger": "cmd_end", "method": {**START, "inputs": []}},
    "set_batch": {"batch": "batch_number"},
}
GOOD = MethodResult(True, "Good", 0, (True, "B1"))


class MethodPlc:
    """A driver double that writes tags and calls methods, recording both in one list."""

    def __init__(self, answer: MethodResult | BaseException = GOOD, delay: float = 0.0) -> None:
        self.log: list[Any] = []
        self.answer = answer
        self.delay = delay

    async def connect(self) -> None: ...

    async def read(self) -> Reading:
        raise AssertionError

    async def close(self) -> None: ...

    async def write(self, tag: str, value: TagValue) -> None:
        self.log.append((tag, value))

    async def call_method(self, call: MethodCall) -> MethodResult:
        self.log.append(call)
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


class WriteOnly:
    async def connect(self) -> None: ...

    async def read(self) -> Reading:
        raise AssertionError

    async def close(self) -> None: ...

    async def write(self, tag: str, value: TagValue) -> None: ...


def router(driver: Any, cmap: dict[str, Any] = MAP) -> tuple[CommandRouter, list[bytes]]:
    sent: list[bytes] = []
    r = CommandRouter(
        TOPICS,
        UTC,
        lambda topic, body: sent.append(body),
        {"plc1": CommandMap.model_validate(cmap)},
        current_batch=lambda: "B1",
        auth=Authoriser.open(),
    )

    async def on_reading(reading: Reading) -> None: ...

    sup = DeviceSupervisor("plc1", driver, on_reading, lambda s, p: None)
    sup.state = DeviceState("plc1", State.ONLINE, None)
    r.attach(sup)
    return r, sent


def send(r: CommandRouter, payload: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(r.handle(CMD, json.dumps(payload).encode()))


def test_the_double_is_what_the_router_expects() -> None:
    assert isinstance(MethodPlc(), MethodDriver) and isinstance(MethodPlc(), WritableDriver)
    assert not isinstance(WriteOnly(), MethodDriver)


def test_start_batch_calls_the_method_with_the_command_fields_and_answers_its_outputs() -> None:
    plc = MethodPlc()
    r, sent = router(plc)
    resp = send(r, {"id": "c1", "command": "start_batch", "batch": " B1 ", "product": "盐"})
    assert resp["status"] == "accepted" and resp["reason"] is None
    assert resp["method"] == {"status": "Good", "code": 0, "outputs": [True, "B1"]}
    assert json.loads(sent[-1]) == resp
    (call,) = plc.log
    assert isinstance(call, MethodCall)
    assert call.args == (("B1", "String"), ("盐", "String"))
    assert (call.object.node, call.method.browse_path) == ("s=Line1", "0:Objects/Line1/StartBatch")
    assert call.timeout_secs == pytest.approx(0.2)
    # product left out: the binding's default is sent
    send(r, {"id": "c2", "command": "start_batch", "batch": "B2"})
    assert plc.log[-1].args == (("B2", "String"), ("", "String"))


def test_writes_come_before_the_method_and_a_tag_only_command_has_no_method_member() -> None:
    plc = MethodPlc()
    r, _ = router(plc)
    resp = send(r, {"id": "e", "command": "end_batch", "batch": "B1"})
    assert resp["status"] == "accepted"
    assert plc.log[0] == ("cmd_end", True) and isinstance(plc.log[1], MethodCall)
    plain = send(r, {"id": "s", "command": "set_batch", "batch": "B9"})
    assert plain["status"] == "accepted" and "method" not in plain


def test_a_bad_status_is_failed_with_its_name_never_accepted() -> None:
    bad = MethodResult(
        False, "BadInvalidArgument", 0x80AB0000, (), ("BadInvalidArgument (invalid)", None)
    )
    r, _ = router(MethodPlc(bad))
    resp = send(r, {"id": "c", "command": "start_batch", "batch": "B1"})
    assert resp["status"] == "failed"
    assert resp["reason"] == (
        "the method answered BadInvalidArgument (input 1: BadInvalidArgument (invalid))"
    )
    assert resp["method"] == {
        "status": "BadInvalidArgument",
        "code": 0x80AB0000,
        "outputs": [],
        "input_errors": ["BadInvalidArgument (invalid)", None],
    }
    assert (r.accepted, r.rejected, r.failed) == (0, 0, 1)


@pytest.mark.parametrize(
    ("answer", "delay", "status", "says"),
    [
        (DeviceOffline("link lost"), 0.0, "failed", "the PLC may or may not have acted"),
        (GOOD, 5.0, "failed", "the PLC may or may not have acted"),  # past timeout_ms + 1 s
        (DeviceFault("method (path 'x'): no such node"), 0.0, "rejected", "no such node"),
        (WriteRejected("input 1: out of range"), 0.0, "rejected", "method call refused"),
    ],
)
def test_no_answer_is_failed_and_a_call_that_could_not_be_made_is_rejected(
    answer: Any, delay: float, status: str, says: str
) -> None:
    r, _ = router(MethodPlc(answer, delay))
    resp = send(r, {"id": "c", "command": "start_batch", "batch": "B1"})
    assert resp["status"] == status and says in resp["reason"]
    assert "method" not in resp


def test_a_missing_field_without_default_and_a_driver_without_methods_are_rejected() -> None:
    strict = {
        "start_batch": {"method": {**START, "inputs": [{"field": "shift", "type": "String"}]}}
    }
    plc = MethodPlc()
    r, _ = router(plc, strict)
    resp = send(r, {"id": "c", "command": "start_batch", "batch": "B1"})
    assert resp["status"] == "rejected"
    assert "input 1 takes field 'shift', which the command does not give" in resp["reason"]
    assert plc.log == []
    r, _ = router(WriteOnly())
    resp = send(r, {"id": "c", "command": "start_batch", "batch": "B1"})
    assert resp["reason"] == "device 'plc1': its driver cannot call methods"


@pytest.mark.parametrize(
    ("cmap", "says"),
    [
        (
            {
                "end_batch": {
                    "method": {**START, "inputs": [{"field": "product", "type": "String"}]}
                }
            },
            "method input 1 takes field 'product', which end_batch does not carry (its fields: "
            "id, batch)",
        ),
        (
            {"start_batch": {"method": {**START, "object": {"node": "s=A", "browse_path": "0:B"}}}},
            "give exactly one of node and browse_path",
        ),
        (
            {"start_batch": {"method": {**START, "inputs": [{"type": "String"}]}}},
            "give exactly one of field and value",
        ),
        (
            {"start_batch": {"method": {**START, "inputs": [{"field": "lot", "type": "String"}]}}},
            "Input should be 'id', 'batch', 'product' or 'shift'",
        ),
        ({"start_batch": {"method": {**START, "timeout_ms": 60000}}}, "less than or equal"),
    ],
)
def test_bindings_that_cannot_work_are_refused(cmap: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        CommandMap.model_validate(cmap)


def test_a_method_alone_is_enough_and_constants_are_passed_as_given() -> None:
    binding = MethodBinding.model_validate(
        {**START, "inputs": [{"value": 7, "type": "UInt16"}, {"field": "id", "type": "String"}]}
    )
    call, why = binding.call({"id": "mes-1", "batch": "B"})
    assert why is None and call is not None and call.args == ((7, "UInt16"), ("mes-1", "String"))
    cmap = CommandMap.model_validate(
        {"start_batch": {"method": START}, "set_batch": {"method": {**START, "inputs": []}}}
    )
    assert cmap.tags() == set() and set(cmap.methods()) == {"start_batch", "set_batch"}
