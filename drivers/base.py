"""The driver seam: what every device driver implements and what it hands to the gateway.

A driver is deliberately small (after Benthos' inputs and httpx's transports): the runtime
owns retries, backoff, device state and counters; a driver only talks to its device.

    connect()  open the link; raise DeviceError when the device cannot be reached
    read()     wait for and return the next Reading (a poll cycle, a scan, a notification)
    close()    release the link; must not raise

Exception tree (the runtime maps each to the device state published on ``…/state/{device}``)::

    DeviceError                 any failure talking to a device
    ├── DeviceOffline           no answer: refused, timed out, link dropped  -> state "offline"
    └── DeviceFault             the device answered, but wrongly: protocol exception,
                                 bad configuration for this device           -> state "fault"

A polled driver (it asks the device on every ``read()``, e.g. Modbus) sets the class attribute
``online_after_first_read = True``: the device is then ``online`` only after a read succeeded,
since many devices accept a TCP connection and then fail every request. Without it (a scanner,
whose ``read()`` waits until somebody scans) the device is ``online`` once connected.

A bad *value* (NaN, out of range, undecodable register) is not an exception: the driver returns
it in ``Reading.errors`` so that one bad tag never stops the others.

Writing is optional: a driver whose devices accept writes (a PLC's command tags) also implements
:class:`WritableDriver` — ``write(tag, value)``. A write the driver refuses before sending anything
(unknown tag, read-only tag, a value the tag's type cannot hold) raises :class:`WriteRejected`;
one the device refuses raises :class:`DeviceFault`; no link raises :class:`DeviceOffline`::

    WriteRejected (ValueError)  refused by the driver: nothing was sent to the device

Calling methods is optional too: a driver whose devices expose methods (an OPC UA PLC's
``StartBatch``) implements :class:`MethodDriver` — ``call_method(call)`` returns the device's
:class:`MethodResult` (its status, good or bad, and its outputs); a call refused before it is
sent (an address or argument the driver cannot use) raises :class:`WriteRejected`. A driver's
config model says whether, and how, it addresses methods
(:meth:`DeviceConfigBase.method_address_error`), so ``saltgw validate`` refuses a method bound
on a device whose driver cannot call one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from drivers.telemetry import DeviceTelemetry, TagKind, value_type

__all__ = [
    "DeviceConfigBase",
    "DeviceError",
    "DeviceFault",
    "DeviceOffline",
    "Driver",
    "DriverSpec",
    "MethodCall",
    "MethodDriver",
    "MethodResult",
    "NodeRef",
    "Reading",
    "TagValue",
    "WritableDriver",
    "WriteRejected",
]

TagValue = int | float | bool | str


class DeviceError(Exception):
    """A failure talking to a device; the message says what and where."""


class DeviceOffline(DeviceError):
    """The device did not answer (connection refused, time-out, link dropped)."""


class DeviceFault(DeviceError):
    """The device answered with an error (protocol exception) or refuses our requests."""


@dataclass(frozen=True, slots=True)
class Reading:
    """What a driver read in one cycle from one device.

    ``values`` holds every tag that decoded to a sane value; ``errors`` holds, per tag, why a
    value was rejected (the gateway turns those into device error events).
    """

    device: str
    ts: datetime
    values: Mapping[str, TagValue]
    errors: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Driver(Protocol):
    """One connection to one device. Created by a :class:`DriverSpec` from its config."""

    async def connect(self) -> None: ...

    async def read(self) -> Reading: ...

    async def close(self) -> None: ...


class WriteRejected(ValueError):
    """A write refused by the driver before anything was sent: the message names the tag and
    why (unknown tag, not writable, value not convertible to the tag's type)."""


@runtime_checkable
class WritableDriver(Driver, Protocol):
    """A driver that can also write tags (e.g. a PLC's command tags for MES write-back).

    ``write`` converts ``value`` to the tag's type on the device and returns once the device
    acknowledged it. It raises :class:`WriteRejected` for an unknown or read-only tag or an
    unconvertible value, :class:`DeviceOffline` when not connected and :class:`DeviceFault`
    when the device refused the write. It may run concurrently with ``read()``.
    """

    async def write(self, tag: str, value: TagValue) -> None: ...


@dataclass(frozen=True, slots=True)
class NodeRef:
    """Where a method (or the object it belongs to) is on the device, in the driver's own
    notation: a node id or a browse path, exactly one of them."""

    node: str | None = None
    browse_path: str | None = None

    def __str__(self) -> str:
        return f"node {self.node!r}" if self.node is not None else f"path {self.browse_path!r}"


@dataclass(frozen=True, slots=True)
class MethodCall:
    """One method call: ``args`` are (value, declared type) pairs in the method's order; the
    type is a name the driver knows (OPC UA: a built-in type such as ``String``)."""

    object: NodeRef
    method: NodeRef
    args: tuple[tuple[TagValue, str], ...] = ()
    timeout_secs: float = 5.0


@dataclass(frozen=True, slots=True)
class MethodResult:
    """What the device answered: its status (``name``, ``code``; ``good`` when it did what
    was asked), why per input argument when it said (``input_errors``), and its outputs."""

    good: bool
    status: str
    code: int
    outputs: tuple[TagValue | None, ...] = ()
    input_errors: tuple[str | None, ...] = ()


@runtime_checkable
class MethodDriver(Driver, Protocol):
    """A driver that can also call a device's methods (OPC UA Call service).

    ``call_method`` returns the device's answer, good or bad, as a :class:`MethodResult`; it
    raises :class:`WriteRejected` when the call cannot be sent (an argument its declared type
    cannot hold), :class:`DeviceOffline` without a link or when no answer came within
    ``call.timeout_secs``, :class:`DeviceFault` when the object or method is not on the
    device."""

    async def call_method(self, call: MethodCall) -> MethodResult: ...


class DeviceConfigBase(BaseModel):
    """Fields every device entry in a tag map has; a driver's config model extends it and
    narrows ``driver`` to a ``Literal`` of its own name (the discriminator)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str = Field(
        description="Device id, unique within the line; used in topics (…/state/{id}) and events.",
        pattern=r"^[A-Za-z0-9_\-]{1,64}$",
    )
    driver: str = Field(description="Name of the driver (an entry point in `saltgw.drivers`).")
    telemetry: DeviceTelemetry | None = Field(
        default=None,
        description="Publish this device's tag values as telemetry (UNS topics, Sparkplug B): "
        "which tags, deadband and intervals (docs/events.md, Tag telemetry); absent: none.",
    )

    def tag_names(self) -> set[str]:
        """Names of the tags this device yields (used to check rule references)."""
        return set()

    def telemetry_tags(self) -> list[TagKind]:
        """The tags telemetry may report, in tag-map order, with their value kind after
        scaling and unit. This default reads a ``tags:`` map whose entries have ``type`` (and
        ``scale``/``offset``/``unit`` when the driver has them), as the Modbus and OPC UA tag
        maps do; a driver with another layout overrides it. A device without such a map (a
        scanner, a camera: their readings are codes, published as events) has none."""
        tags = getattr(self, "tags", None)
        if not isinstance(tags, dict):
            return []
        out = []
        for name, tag in tags.items():
            scaled = getattr(tag, "scale", 1.0) != 1.0 or getattr(tag, "offset", 0.0) != 0.0
            unit = getattr(tag, "unit", None)
            out.append(
                TagKind(
                    str(name),
                    value_type(getattr(tag, "type", None), scaled),
                    unit if isinstance(unit, str) else None,
                )
            )
        return out

    #: The driver implements :class:`MethodDriver`: commands may be bound to its methods.
    calls_methods: ClassVar[bool] = False

    @classmethod
    def method_address_error(cls, ref: NodeRef) -> str | None:
        """Why a device of this driver cannot call a method at ``ref`` (None: it can). A
        driver that calls methods sets :attr:`calls_methods` and checks the address's syntax
        here."""
        return None if cls.calls_methods else "the driver calls no methods"

    def with_snapshot_counter(self, tag: str) -> DeviceConfigBase:
        """This config with ``tag`` (a profile's record counter) as the tag that keeps one
        reading to one record, where the driver can read a device in several requests (Modbus:
        ``snapshot``) and the config names none. Other drivers: unchanged."""
        return self


@dataclass(frozen=True)
class DriverSpec:
    """What an entry point in ``saltgw.drivers`` points at.

    ``config_model`` validates a device entry (its ``driver`` field a Literal of ``name``);
    ``create`` builds a driver from a validated config.

    A driver whose implementation needs optional packages names them: ``requires`` lists the
    top-level modules ``create`` imports (checked with ``importlib.util.find_spec``, never
    imported) and ``extra`` the saltgw extra that installs them (``pip install
    'saltgw[modbus]'``). The spec's own module must import none of them, so that a config can
    be validated, and a missing package reported, without them (gateway/config/extras.py).
    """

    name: str
    config_model: type[DeviceConfigBase]
    create: Callable[[Any], Driver]
    description: str = ""
    extra: str | None = None
    requires: tuple[str, ...] = ()
    api_version: ClassVar[int] = 1
