"""MES write-back: commands on ``…/{line}/cmd/{device}``, answered on ``…/cmd/{device}/response``
(``docs/commands.md``).

A command is a JSON object with an ``id`` and a ``command``: ``start_batch`` (``batch``,
optional ``product`` and ``shift``), ``end_batch`` (optional ``batch``: then it must be the
running one) or ``set_batch`` (``batch``). Which device tags a command writes is configured in
the device's profile (``commands:``, a :class:`CommandMap`): first the parameters, then the
``trigger`` tag is set true (the PLC resets it when it acted) — and/or a device *method* is
called (``method:``, :mod:`gateway.command_methods`: an OPC UA PLC's ``StartBatch``). A binding
that cannot take effect (``start_batch`` with neither a method nor a batch tag and a trigger)
is refused when the config is validated, never accepted at run time.

Every command gets exactly one response, ``{"id", "status": "accepted" | "rejected" |
"failed", "reason", "command", "device", "ts"}`` plus ``method`` (status, code, outputs) when a
method was called (QoS 1, not retained). *accepted* means the PLC acknowledged every write and
the method (if any) answered Good; *failed* that the method answered anything else, or no
answer came (the PLC may have acted); what the line then does shows in its events
(``batch.start``…). A command is rejected,
with the reason, when it is not JSON, misses or misspells a field, names an unknown command or
device, a device that takes no such command, a device that is offline, or when a write fails.
A command the broker replays because it was retained is never executed (it would run again on
every reconnect); an empty payload (deleting a retained message) gets no response.

Who may send what is decided by :mod:`gateway.command_auth` (closed without a ``commands:``
section); a refusal is answered ``not authorised`` and nothing more, the reason goes to the log.

Threading: :meth:`CommandRouter.on_message` runs on the MQTT forwarder thread and only hands
the message to the gateway's event loop; commands run there, one at a time per device. At most
:data:`MAX_WAITING` commands wait per device; more are answered ``busy`` at once, so a flood
cannot queue unbounded work for a PLC.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from drivers.base import (
    DeviceError,
    DeviceFault,
    DeviceOffline,
    MethodDriver,
    MethodResult,
    TagValue,
    WritableDriver,
    WriteRejected,
)
from gateway.command_auth import Authoriser, NotAuthorised
from gateway.command_methods import COMMAND_FIELDS, MethodBinding, method_response
from gateway.events import EventDraft
from gateway.json_object import NotAnObject, json_object
from gateway.json_object import peek_id as peek_any_id
from gateway.supervisor import DeviceSupervisor, State
from gateway.topics import Topics

__all__ = [
    "COMMANDS",
    "OPERATOR_COMMANDS",
    "WRITE_COMMANDS",
    "CommandFailed",
    "CommandMap",
    "CommandRejected",
    "CommandRouter",
    "CommandTags",
    "EndBatch",
    "SetBatch",
    "StartBatch",
    "command_maps",
    "parse_command",
]

log = logging.getLogger(__name__)

WRITE_COMMANDS = ("end_batch", "set_batch", "start_batch")  # written to a PLC (commands: map)
OPERATOR_COMMANDS = ("close_partial", "resync", "unpack")  # acted on by a packing profile
COMMANDS = tuple(sorted(WRITE_COMMANDS + OPERATOR_COMMANDS))
WRITE_TIMEOUT_SECS = 10.0  # all writes of one command
MAX_WAITING = 16  # commands waiting (or running) per device; more are refused "busy"
NOT_AUTHORISED = "not authorised"  # all a refused sender learns (the reason is logged)

TagRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
BatchNo = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^\S.*$")
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)]


# -- configuration (a profile's `commands:`) ------------------------------------------------------
class CommandTags(BaseModel):
    """What one command does on its device: the tags it writes (its parameters first, then
    ``trigger``) and/or the method it calls after them."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    batch: TagRef | None = Field(default=None, description="Tag that receives the batch number.")
    product: TagRef | None = Field(default=None, description="Tag that receives the product.")
    shift: TagRef | None = Field(default=None, description="Tag that receives the shift.")
    trigger: TagRef | None = Field(
        default=None,
        description="Boolean tag set true after the parameters are written; the PLC acts on it "
        "and resets it.",
    )
    method: MethodBinding | None = Field(
        default=None,
        description="Device method called after the writes (OPC UA: object and method node, "
        "input arguments from the command's fields); its status and outputs are in the "
        "response (docs/commands.md, Methods).",
    )

    def tags(self) -> list[str]:
        return [t for t in (self.batch, self.product, self.shift, self.trigger) if t is not None]

    def _effect(self, command: str, takes_effect: bool, needs: str) -> None:
        if not takes_effect:
            raise ValueError(f"{command} cannot take effect: bind {needs}")
        if self.method is not None:
            for i, name in self.method.unknown_fields(command):
                have = ", ".join(COMMAND_FIELDS[command])
                raise ValueError(
                    f"method input {i + 1} takes field {name!r}, which {command} does not "
                    f"carry (its fields: {have})"
                )


class StartBatchTags(CommandTags):
    @model_validator(mode="after")
    def _takes_effect(self) -> StartBatchTags:
        self._effect(
            "start_batch",
            self.method is not None or (self.batch is not None and self.trigger is not None),
            "a method, or a batch tag and a trigger tag (a PLC starts no batch on a written "
            "batch number alone)",
        )
        return self


class EndBatchTags(CommandTags):
    @model_validator(mode="after")
    def _takes_effect(self) -> EndBatchTags:
        self._effect(
            "end_batch",
            self.method is not None or self.trigger is not None or self.batch is not None,
            "a method, a trigger tag, or a batch tag to clear",
        )
        return self


class SetBatchTags(CommandTags):
    @model_validator(mode="after")
    def _takes_effect(self) -> SetBatchTags:
        self._effect(
            "set_batch",
            self.method is not None or self.batch is not None,
            "a method or a batch tag",
        )
        return self


class CommandMap(BaseModel):
    """Which commands a device takes: the tags each writes, the method each calls."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    start_batch: StartBatchTags | None = Field(
        default=None,
        description="start_batch: writes batch, product, shift, then trigger; and/or calls a "
        "method. Needs a method, or a batch tag and a trigger.",
    )
    end_batch: EndBatchTags | None = Field(
        default=None,
        description="end_batch: sets trigger (without one, writes '' to the batch tag); and/or "
        "calls a method.",
    )
    set_batch: SetBatchTags | None = Field(
        default=None,
        description="set_batch: writes batch, then trigger if given; and/or calls a method.",
    )

    def configured(self) -> list[str]:
        return [name for name in WRITE_COMMANDS if getattr(self, name) is not None]

    def tags(self) -> set[str]:
        """Every device tag the commands write (each must be writable)."""
        out: set[str] = set()
        for name in self.configured():
            tags: CommandTags = getattr(self, name)
            out.update(tags.tags())
        return out

    def methods(self) -> dict[str, MethodBinding]:
        """Command → the method it calls, for the commands that call one."""
        out: dict[str, MethodBinding] = {}
        for name in self.configured():
            method = getattr(self, name).method
            if method is not None:
                out[name] = method
        return out


# -- the messages MES sends ------------------------------------------------------------------------
class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Chosen by MES; the response carries it back."
    )
    # who sent it and its signature: checked by gateway/command_auth.py when configured
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    ts: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    sig: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class StartBatch(_Command):
    command: Literal["start_batch"]
    batch: BatchNo
    product: Text | None = None
    shift: Text | None = None


class EndBatch(_Command):
    command: Literal["end_batch"]
    batch: BatchNo | None = None


class SetBatch(_Command):
    command: Literal["set_batch"]
    batch: BatchNo


Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class ClosePartial(_Command):
    """Operator: close a short case/pallet as partial (issue 5), with the reason."""

    command: Literal["close_partial"]
    code: Code
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    operator: Text | None = None


class Unpack(_Command):
    """Operator: rework a case/pallet (pack.unpack frees its children), with the reason."""

    command: Literal["unpack"]
    code: Code
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    operator: Text | None = None


class Resync(_Command):
    """Operator: drop the bags (cases) waiting for a label after the line was cleared by hand."""

    command: Literal["resync"]
    operator: Text | None = None


WriteCommand = StartBatch | EndBatch | SetBatch
OperatorCommand = ClosePartial | Unpack | Resync
AnyCommand = WriteCommand | OperatorCommand
Command = Annotated[AnyCommand, Field(discriminator="command")]
# built at the first command a gateway receives, not at import (docs/performance.md)
_COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command, config=ConfigDict(defer_build=True))


@runtime_checkable
class Operable(Protocol):
    """A packing profile (case_packer, pallet_builder): what operator commands act on."""

    device: str

    def close_partial(
        self, code: str, reason: str, operator: str | None, now: datetime
    ) -> list[EventDraft]: ...

    def unpack(
        self, code: str, reason: str, operator: str | None, now: datetime
    ) -> list[EventDraft]: ...

    def resync(self, now: datetime) -> list[EventDraft]: ...


class CommandRejected(Exception):
    """A command refused with a reason (the response says it)."""

    def __init__(self, reason: str, command: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command


class CommandFailed(Exception):
    """A command that reached the device and did not succeed there (a method's Bad status, no
    answer in time): answered ``failed``, with the method's answer when there is one."""

    def __init__(self, reason: str, method: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.method = method


MAX_PAYLOAD_BYTES = 65_536  # a command is a few hundred bytes: a bigger payload is refused unread
_REASON_ERRORS = 5  # validation errors named in a reason; the rest are counted


def _short(text: str, limit: int = 64) -> str:
    """``text`` quoted in a reason, cut to ``limit`` characters (a payload may be huge)."""
    return text if len(text) <= limit else f"{text[:limit]}…(+{len(text) - limit} characters)"


def _pydantic_reason(exc: ValidationError) -> str:
    parts = []
    errors = exc.errors()
    for err in errors[:_REASON_ERRORS]:
        loc = _short(".".join(str(x) for x in err["loc"][1:])) or "payload"
        if err["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown field {loc!r}")
        else:
            parts.append(f"{loc}: {err['msg']}")
    if len(errors) > _REASON_ERRORS:
        parts.append(f"{len(errors) - _REASON_ERRORS} more error(s)")
    return "; ".join(parts)


def parse_command(payload: bytes) -> tuple[str | None, AnyCommand]:
    """(id, command) from a message; raises CommandRejected (with the id if it had one)."""
    try:
        obj = json_object(payload, MAX_PAYLOAD_BYTES, "command")
    except NotAnObject as exc:
        raise CommandRejected(str(exc)) from None
    raw_id = obj.get("id")
    cmd_id = raw_id if isinstance(raw_id, str) and raw_id else None
    name = obj.get("command")
    if name is None:
        raise CommandRejected(f"missing field 'command' (one of {', '.join(COMMANDS)})")
    if name not in COMMANDS:
        raise CommandRejected(
            f"unknown command {_short(repr(name))} (known: {', '.join(COMMANDS)})"
        )
    try:
        return cmd_id, _COMMAND.validate_python(obj)
    except ValidationError as exc:
        raise CommandRejected(f"{name}: {_pydantic_reason(exc)}", str(name)) from None


# -- the router ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _Device:
    supervisor: DeviceSupervisor
    commands: CommandMap | None
    lock: asyncio.Lock


class CommandRouter:
    """Validates commands, writes them to their device and publishes the response."""

    def __init__(
        self,
        topics: Topics,
        tz: tzinfo,
        publish: Callable[[str, bytes], None],
        command_maps: Mapping[str, CommandMap],
        current_batch: Callable[[], str | None] = lambda: None,
        accept: Callable[[list[EventDraft]], Awaitable[Any]] | None = None,
        auth: Authoriser | None = None,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.topics = topics
        self.tz = tz
        self.publish = publish
        self.command_maps = dict(command_maps)
        self.current_batch = current_batch
        self.accept = accept
        # None: no commands: section, so every command is refused (closed by default)
        self.auth = auth if auth is not None else Authoriser(None)
        self.max_waiting = max_waiting
        self._waiting: dict[str, int] = {}  # device -> commands spawned and not finished
        self.busy = 0  # commands refused because max_waiting were waiting
        self.devices: dict[str, _Device] = {}
        self.operables: dict[str, Operable] = {}
        self.accepted = 0
        self.rejected = 0
        self.failed = 0  # reached the device, and a method said Bad (or never answered)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def attach(self, supervisor: DeviceSupervisor) -> None:
        """Make a device reachable by commands (its supervisor holds driver and state)."""
        dev = supervisor.device
        self.devices[dev] = _Device(supervisor, self.command_maps.get(dev), asyncio.Lock())

    def attach_operable(self, profile: Operable) -> None:
        """Make a packing profile's operator actions reachable on its device's topic."""
        self.operables[profile.device] = profile

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # -- any thread ----------------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """From the MQTT forwarder thread: run the command on the gateway's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("command on %r dropped: the gateway is not running", topic)
            return
        loop.call_soon_threadsafe(self._spawn, topic, payload, retained)

    def _spawn(self, topic: str, payload: bytes, retained: bool) -> None:
        device = topic.rsplit("/", 1)[-1]
        if not payload:
            return
        waiting = self._waiting.get(device, 0)
        if waiting >= self.max_waiting:
            self.busy += 1
            self._respond(
                device,
                _peek_id(payload),
                None,
                "rejected",
                f"busy: {waiting} commands waiting for {device}",
            )
            return
        self._waiting[device] = waiting + 1
        task = asyncio.get_running_loop().create_task(
            self.handle(topic, payload, retained), name="command"
        )
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(device, t))

    def _done(self, device: str, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        left = self._waiting.get(device, 1) - 1
        if left > 0:
            self._waiting[device] = left
        else:
            self._waiting.pop(device, None)

    async def close(self) -> None:
        """Let running commands finish (bounded), then cancel what is left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=WRITE_TIMEOUT_SECS)
        for task in list(self._tasks):
            task.cancel()
        self.auth.close()

    # -- the gateway's loop --------------------------------------------------------------------
    async def handle(self, topic: str, payload: bytes, retained: bool = False) -> dict[str, Any]:
        """Run one command and publish its response; returns the response."""
        device = topic.rsplit("/", 1)[-1]
        if not payload:  # deletes a retained message (MQTT convention): not a command
            return {}
        cmd_id: str | None = None
        name: str | None = None
        try:
            try:
                cmd_id, cmd = parse_command(payload)
            except CommandRejected as exc:
                cmd_id, name = _peek_id(payload), exc.command
                raise
            name = cmd.command
            try:
                self.auth.check(device, json.loads(payload))
            except NotAuthorised as exc:  # the reason is for the log, not for the sender
                log.warning(
                    "command %s (id %r) for %s not authorised: %s", name, cmd_id, device, exc
                )
                raise CommandRejected(NOT_AUTHORISED) from None
            except Exception as exc:  # e.g. the used-ids store closed at shutdown: refuse
                log.error("command %s (id %r) for %s refused: authorisation failed: %r",
                          name, cmd_id, device, exc)  # fmt: skip
                raise CommandRejected(NOT_AUTHORISED) from None
            if retained:
                raise CommandRejected(
                    "retained command not executed (publish commands with retain=false)"
                )
            method: dict[str, Any] | None = None
            if isinstance(cmd, ClosePartial | Unpack | Resync):
                await self._operate(device, cmd)
            else:
                method = await self._execute(device, cmd)
        except CommandRejected as exc:
            return self._respond(device, cmd_id, name, "rejected", exc.reason)
        except CommandFailed as exc:
            return self._respond(device, cmd_id, name, "failed", exc.reason, exc.method)
        return self._respond(device, cmd_id, name, "accepted", None, method)

    def _respond(
        self,
        device: str,
        cmd_id: str | None,
        name: str | None,
        status: str,
        reason: str | None,
        method: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        response: dict[str, Any] = {
            "id": cmd_id,
            "status": status,
            "reason": reason,
            "command": name,
            "device": device,
            "ts": datetime.now(self.tz).isoformat(timespec="milliseconds"),
        }
        if method is not None:
            response["method"] = method
        if status == "accepted":
            self.accepted += 1
            log.info("command %s (id %r) for %s accepted", name, cmd_id, device)
        elif status == "failed":
            self.failed += 1
            log.warning("command %s (id %r) for %s failed: %s", name, cmd_id, device, reason)
        else:
            self.rejected += 1
            log.warning(
                "command %s (id %r) for %s rejected: %s", name or "?", cmd_id, device, reason
            )
        try:
            body = json.dumps(response, ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate in the id: \u escapes carry it back
            body = json.dumps(response).encode()
        self.publish(self.topics.command_response(device), body)
        return response

    def _target(self, device: str, name: str) -> tuple[_Device, CommandTags]:
        dev = self.devices.get(device)
        if dev is None:
            known = ", ".join(sorted(self.devices)) or "none"
            raise CommandRejected(f"no device {device!r} on this line (devices: {known})")
        if dev.commands is None:
            raise CommandRejected(
                f"device {device!r} takes no commands (its profile has no commands: map)"
            )
        tags: CommandTags | None = getattr(dev.commands, name)
        if tags is None:
            have = ", ".join(dev.commands.configured())
            raise CommandRejected(f"device {device!r} has no {name!r} command (it takes: {have})")
        return dev, tags

    def _writable(self, device: str, dev: _Device) -> WritableDriver:
        """The device's driver, when it can write and the device is online."""
        driver = dev.supervisor.driver
        if not isinstance(driver, WritableDriver):
            raise CommandRejected(f"device {device!r}: its driver cannot write tags")
        self._online(device, dev)
        return driver

    def _callable(self, device: str, dev: _Device) -> MethodDriver:
        """The device's driver, when it can call methods and the device is online."""
        driver = dev.supervisor.driver
        if not isinstance(driver, MethodDriver):
            raise CommandRejected(f"device {device!r}: its driver cannot call methods")
        self._online(device, dev)
        return driver

    def _online(self, device: str, dev: _Device) -> None:
        state = dev.supervisor.state
        if state is None or state.state != State.ONLINE:
            what = {None: "is not connected yet", State.FAULT: "has a fault"}.get(
                state.state if state else None, "is offline"
            )
            detail = f": {state.detail}" if state is not None and state.detail else ""
            raise CommandRejected(f"device {device!r} {what}{detail}")

    async def write_tag(self, device: str, tag: str, value: TagValue) -> None:
        """Write one tag for another command channel (Sparkplug DCMD writes, which check the
        allow-list themselves: gateway/telemetry/sparkplug/commands.py), under the device's
        lock and time limit like a command's writes. Raises :class:`CommandRejected`."""
        dev = self.devices.get(device)
        if dev is None:
            raise CommandRejected(f"no device {device!r} on this line")
        driver = self._writable(device, dev)
        async with dev.lock:
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_SECS):
                    await driver.write(tag, value)
            except TimeoutError:
                raise CommandRejected(
                    f"device {device!r} did not acknowledge the write of {tag!r} within "
                    f"{WRITE_TIMEOUT_SECS:g} s"
                ) from None
            except (WriteRejected, DeviceError) as exc:
                raise CommandRejected(f"write of {tag!r} failed: {exc}") from None

    async def _operate(self, device: str, cmd: OperatorCommand) -> None:
        """Run an operator action on the device's packing profile and journal what it
        produced; a refusal (alarm.aggregation) is journaled too, and rejects the command."""
        target = self.operables.get(device)
        if target is None:
            have = ", ".join(sorted(self.operables)) or "none"
            raise CommandRejected(
                f"device {device!r} takes no operator commands (only case/pallet label "
                f"scanners do: {have})"
            )
        now = datetime.now(self.tz)
        if isinstance(cmd, ClosePartial):
            drafts = target.close_partial(cmd.code, cmd.reason, cmd.operator, now)
        elif isinstance(cmd, Unpack):
            drafts = target.unpack(cmd.code, cmd.reason, cmd.operator, now)
        else:
            drafts = target.resync(now)
        if self.accept is not None:
            await self.accept(drafts)
        refused = [
            d for d in drafts if d.type == "alarm.aggregation" and d.data.get("reason") != "resync"
        ]
        if refused:
            raise CommandRejected(str(refused[0].data.get("detail", "refused")))

    async def _execute(self, device: str, cmd: WriteCommand) -> dict[str, Any] | None:
        """Write the command's tags, then call its method; the method's answer (None: no
        method) for the response."""
        dev, tags = self._target(device, cmd.command)
        writes = self._writes(cmd, tags)
        call = None
        if tags.method is not None:
            fields = {k: cmd.model_dump().get(k) for k in COMMAND_FIELDS[cmd.command]}
            call, why = tags.method.call(fields)
            if call is None:
                raise CommandRejected(f"{cmd.command}: {why}")
        writer = self._writable(device, dev) if writes else None
        caller = self._callable(device, dev) if call is not None else None
        done: list[str] = []
        async with dev.lock:
            if writer is not None:
                try:
                    async with asyncio.timeout(WRITE_TIMEOUT_SECS):
                        for tag, value in writes:
                            await writer.write(tag, value)
                            done.append(tag)
                except TimeoutError:
                    raise CommandRejected(
                        f"device {device!r} did not acknowledge the writes within "
                        f"{WRITE_TIMEOUT_SECS:g} s (written: {', '.join(done) or 'none'})"
                    ) from None
                except (WriteRejected, DeviceError) as exc:
                    raise CommandRejected(
                        f"write failed: {exc} (written before: {', '.join(done) or 'none'})"
                    ) from None
            if caller is None or call is None:
                return None
            result = await self._call(device, caller, call, done)
        answer = method_response(result)
        if not result.good:
            inputs = "; ".join(
                f"input {i}: {why}" for i, why in enumerate(result.input_errors, 1) if why
            )
            raise CommandFailed(
                f"the method answered {result.status}" + (f" ({inputs})" if inputs else ""),
                answer,
            )
        return answer

    async def _call(
        self, device: str, driver: MethodDriver, call: Any, written: list[str]
    ) -> MethodResult:
        before = f" (written before: {', '.join(written)})" if written else ""
        try:
            async with asyncio.timeout(call.timeout_secs + 1.0):  # the driver's own, and a bound
                return await driver.call_method(call)
        except WriteRejected as exc:  # nothing was sent
            raise CommandRejected(f"method call refused: {exc}{before}") from None
        except DeviceFault as exc:  # the object or method is not on the device
            raise CommandRejected(f"method call failed: {exc}{before}") from None
        except (TimeoutError, DeviceOffline) as exc:
            why = str(exc) or f"no answer within {call.timeout_secs:g} s"
            raise CommandFailed(
                f"device {device!r} gave no result: {why}; the PLC may or may not have acted"
                f"{before}"
            ) from None
        except DeviceError as exc:
            raise CommandFailed(f"method call failed: {exc}{before}") from None

    def _writes(self, cmd: WriteCommand, tags: CommandTags) -> list[tuple[str, TagValue]]:
        out: list[tuple[str, TagValue]] = []
        if isinstance(cmd, EndBatch):
            running = self.current_batch()
            if cmd.batch is not None and cmd.batch != running:
                raise CommandRejected(
                    f"batch {cmd.batch!r} is not the running batch ({running or 'none'})"
                )
            if tags.trigger is None and tags.batch is not None:
                out.append((tags.batch, ""))
        else:
            if tags.batch is not None:
                out.append((tags.batch, cmd.batch))
            if isinstance(cmd, StartBatch):
                if tags.product is not None and cmd.product is not None:
                    out.append((tags.product, cmd.product))
                if tags.shift is not None and cmd.shift is not None:
                    out.append((tags.shift, cmd.shift))
        if tags.trigger is not None:
            out.append((tags.trigger, True))
        return out


def command_maps(profiles: Iterable[Any]) -> dict[str, CommandMap]:
    """Device id → its command map, from the profile entries that have one."""
    out: dict[str, CommandMap] = {}
    for entry in profiles:
        commands = getattr(entry, "commands", None)
        if isinstance(commands, CommandMap):
            out[entry.device] = commands
    return out


def _peek_id(payload: bytes) -> str | None:
    """The id of a refused message, to echo (:func:`gateway.json_object.peek_id`)."""
    return peek_any_id(payload, MAX_PAYLOAD_BYTES)
