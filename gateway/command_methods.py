"""MES commands bound to a device *method* (an OPC UA PLC's ``StartBatch``), beside or instead
of tag writes (``docs/commands.md``, "Methods").

A binding names the method and the object it belongs to as the device's driver addresses nodes
(OPC UA: ``node:`` NodeId or ``browse_path:``), and its input arguments in the method's order:
each a field of the command (``batch``, ``product``…) or a constant ``value``, with its declared
type. What the device answers goes back to MES in the response's ``method`` member: the status
name and code and the output arguments; anything but a Good status answers the command
``failed``, never ``accepted``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from drivers.base import MethodCall, MethodResult, NodeRef, TagValue

__all__ = [
    "ARGUMENT_TYPES",
    "COMMAND_FIELDS",
    "MethodArgument",
    "MethodBinding",
    "MethodNode",
    "method_response",
]

#: What each write command carries that a method argument may take (besides constants).
COMMAND_FIELDS: dict[str, tuple[str, ...]] = {
    "start_batch": ("id", "batch", "product", "shift"),
    "end_batch": ("id", "batch"),
    "set_batch": ("id", "batch"),
}
ArgumentType = Literal[
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
    "LocalizedText",
]
#: The declared types an argument may have (OPC UA built-in types a command value converts to).
ARGUMENT_TYPES: tuple[str, ...] = get_args(ArgumentType)
MAX_CALL_TIMEOUT_MS = 10_000  # a command's writes have 10 s too: a stop waits no longer

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class MethodNode(_Strict):
    """A node addressed as the device's driver addresses a tag: exactly one of the two."""

    node: Text | None = Field(
        default=None,
        description="Node id, e.g. 's=Line1.StartBatch' (in the device's namespace_uri), "
        "'nsu=urn:plc;s=Line1' or 'ns=2;i=5001'.",
    )
    browse_path: Text | None = Field(
        default=None, description="Browse path from the Root folder, e.g. '0:Objects/Line1'."
    )

    @model_validator(mode="after")
    def _one(self) -> MethodNode:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of node and browse_path")
        return self

    def ref(self) -> NodeRef:
        return NodeRef(self.node, self.browse_path)


class MethodArgument(_Strict):
    """One input argument: a field of the command or a constant, converted to ``type``."""

    field: Literal["id", "batch", "product", "shift"] | None = Field(
        default=None,
        description="The command field that gives the value (start_batch: id, batch, product, "
        "shift; end_batch and set_batch: id, batch).",
    )
    value: TagValue | None = Field(default=None, description="A constant value instead of a field.")
    default: TagValue | None = Field(
        default=None,
        description="Sent when the command leaves `field` out (e.g. '' for no product); "
        "without it such a command is rejected.",
    )
    type: ArgumentType = Field(
        description="The argument's declared type (the method's InputArguments): the value is "
        "converted to it, with range checks, before anything is sent."
    )

    @model_validator(mode="after")
    def _one(self) -> MethodArgument:
        if (self.field is None) == (self.value is None):
            raise ValueError("give exactly one of field and value")
        if self.value is not None and self.default is not None:
            raise ValueError("default goes with field, not with value")
        return self

    def pick(self, fields: dict[str, Any]) -> TagValue | None:
        """The value for one command (None: the command lacks the field, and no default)."""
        if self.value is not None:
            return self.value
        assert self.field is not None
        got = fields.get(self.field)
        return got if got is not None else self.default


class MethodBinding(_Strict):
    """The method a command calls (after its tag writes, if it has any)."""

    object: MethodNode = Field(description="The object the method belongs to.")
    method: MethodNode = Field(description="The method node.")
    inputs: list[MethodArgument] = Field(
        default_factory=list,
        max_length=32,
        description="Input arguments, in the method's order.",
    )
    timeout_ms: float = Field(
        default=5000,
        gt=0,
        le=MAX_CALL_TIMEOUT_MS,
        description="How long to wait for the method's result; no result in time answers the "
        "command `failed` (the PLC may or may not have acted).",
    )

    def unknown_fields(self, command: str) -> list[tuple[int, str]]:
        """(index, field) of each input naming a field ``command`` does not carry."""
        known = COMMAND_FIELDS.get(command, ())
        return [
            (i, a.field)
            for i, a in enumerate(self.inputs)
            if a.field is not None and a.field not in known
        ]

    def call(self, fields: dict[str, Any]) -> tuple[MethodCall | None, str | None]:
        """The call for one command's ``fields``, or why it cannot be made."""
        args: list[tuple[TagValue, str]] = []
        for i, arg in enumerate(self.inputs, start=1):
            value = arg.pick(fields)
            if value is None:
                return None, (
                    f"the method's input {i} takes field {arg.field!r}, which the command "
                    "does not give (and the binding has no default)"
                )
            args.append((value, arg.type))
        call = MethodCall(self.object.ref(), self.method.ref(), tuple(args), self.timeout_ms / 1000)
        return call, None


def method_response(result: MethodResult) -> dict[str, Any]:
    """The response's ``method`` member (docs/commands.md)."""
    out: dict[str, Any] = {
        "status": result.status,
        "code": result.code,
        "outputs": list(result.outputs),
    }
    if result.input_errors:
        out["input_errors"] = list(result.input_errors)
    return out
