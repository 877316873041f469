"""Calling a method of the server (OPC UA Part 4, 5.11.2 Call): what MES commands bound to a
method use (``gateway/commands.py``).

Every call resolves the object and the method again on the current connection (as tags are on
connect: a PLC that renumbered its namespaces is followed), converts each argument to its
declared built-in type with the range checks of a write (``values.to_variant``), and returns
the server's answer — good or bad — as a :class:`drivers.base.MethodResult`:

    server answered (any status)                 -> MethodResult(good=status is Good)
    argument does not fit its declared type      -> WriteRejected (nothing sent)
    object or method not on the server           -> DeviceFault
    no answer within the call's timeout / no link -> DeviceOffline
"""

from __future__ import annotations

import asyncio
import logging

from asyncua import Client, ua

from drivers.base import (
    DeviceError,
    DeviceFault,
    DeviceOffline,
    MethodCall,
    MethodResult,
    NodeRef,
    TagValue,
    WriteRejected,
)
from drivers.opcua.config import TYPE_HINTS, OpcUaDeviceConfig, OpcUaTag
from drivers.opcua.errors import device_error
from drivers.opcua.resolve import resolve_one, status_text
from drivers.opcua.values import to_tag_value, to_variant

__all__ = ["ARGUMENT_TYPES", "call_method"]

log = logging.getLogger(__name__)

#: Declared argument types a call converts to (DateTime is not: a command carries no times).
ARGUMENT_TYPES = tuple(t for t in TYPE_HINTS if t != "DateTime")


def _variant(value: TagValue, type_name: str, where: str) -> ua.Variant:
    if type_name not in ARGUMENT_TYPES:
        raise WriteRejected(
            f"{where}: type {type_name!r} is not one of {', '.join(ARGUMENT_TYPES)}"
        )
    return to_variant(value, ua.VariantType[type_name], where)


def _output(value: object) -> TagValue | None:
    try:
        return to_tag_value(value)
    except ValueError:
        return None if value is None else str(value)


async def _node(client: Client, cfg: OpcUaDeviceConfig, ref: NodeRef, what: str) -> ua.NodeId:
    try:
        return await resolve_one(client, cfg, OpcUaTag(node=ref.node, browse_path=ref.browse_path))
    except LookupError as exc:
        raise DeviceFault(f"{what} ({ref}): {exc.args[0]}") from None


async def call_method(
    client: Client, cfg: OpcUaDeviceConfig, call: MethodCall, where: str
) -> MethodResult:
    """Call ``call.method`` on ``call.object``; see the module docstring."""
    label = f"method {call.method} of object {call.object} on {where}"
    variants = [
        _variant(value, type_name, f"{label}: input {i}")
        for i, (value, type_name) in enumerate(call.args, start=1)
    ]
    try:
        async with asyncio.timeout(call.timeout_secs):
            object_id = await _node(client, cfg, call.object, "object")
            method_id = await _node(client, cfg, call.method, "method")
            request = ua.CallMethodRequest(
                ObjectId=object_id, MethodId=method_id, InputArguments=variants
            )
            (result,) = await client.uaclient.call([request])
    except TimeoutError:
        raise DeviceOffline(
            f"{label}: no answer within {call.timeout_secs:g} s (the PLC may or may not have acted)"
        ) from None
    except DeviceError:
        raise
    except Exception as exc:
        raise device_error(exc, f"calling {label}") from exc
    status = result.StatusCode or ua.StatusCode()
    inputs = tuple(
        None if code is None or code.is_good() else status_text(code)
        for code in (result.InputArgumentResults or [])
    )
    outputs = tuple(_output(v.Value if isinstance(v, ua.Variant) else v)
                    for v in (result.OutputArguments or []))  # fmt: skip
    log.info("device %s: called %s: %s", cfg.id, label, status.name)
    return MethodResult(
        good=status.is_good(),
        status=status.name,
        code=int(status.value),
        outputs=outputs,
        input_errors=inputs if any(inputs) else (),
    )
