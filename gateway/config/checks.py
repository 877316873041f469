"""Checks across sections that a schema cannot express (references between entries).

They run on the raw data, so that they report alongside schema errors, all in one go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drivers.base import NodeRef
from drivers.modbus.ports import shared_port_errors
from drivers.registry import driver_spec
from gateway.commands import WRITE_COMMANDS
from gateway.profiles.registry import profile_spec
from gateway.telemetry.config import plan_errors

__all__ = ["DeviceValidator", "cross_checks", "profile_warnings"]

Loc = tuple[str | int, ...]
#: (index, entry of ``devices:``) -> the entry validated by its driver's model, or
#: ValidationError (the loader passes the validated config's devices when it has them)
DeviceValidator = Callable[[int, Any], Any]


def _spec(prof: dict[str, Any]) -> Any:
    """The ProfileSpec an entry of ``profiles:`` names (only its module loaded), or None."""
    return profile_spec(str(prof.get("profile")))


def _device_tags(i: int, entry: Any, validate: DeviceValidator) -> set[str] | None:
    try:
        return set(validate(i, entry).tag_names())
    except ValidationError:
        # its schema errors are reported elsewhere; still check references to its tags
        tags = entry.get("tags") if isinstance(entry, dict) else None
        return {str(k) for k in tags} if isinstance(tags, dict) else None


def _command_refs(
    prof: dict[str, Any], i: int, device: str, tags: set[str], entry: Any
) -> Iterator[tuple[Loc, str]]:
    """A profile's ``commands:`` (MES write-back, docs/commands.md) names device tags: each
    must exist and be writable (``writable: true`` in the device's tag map)."""
    commands = prof.get("commands")
    if not isinstance(commands, dict):
        return
    raw_tags = entry.get("tags") if isinstance(entry, dict) else None
    for name, params in commands.items():
        if name not in WRITE_COMMANDS:  # reported by the schema
            continue
        for param, tag in (params or {}).items() if isinstance(params, dict) else ():
            if not isinstance(tag, str):
                continue
            loc: Loc = ("profiles", i, "commands", str(name), str(param))
            spec = raw_tags.get(tag) if isinstance(raw_tags, dict) else None
            if tag not in tags:
                have = ", ".join(sorted(tags))
                yield loc, f"device {device!r} has no tag {tag!r} (tags: {have})"
            elif isinstance(spec, dict) and spec.get("writable") is not True:
                yield loc, f"tag {tag!r} of device {device!r} is not writable (add writable: true)"
        method = params.get("method") if isinstance(params, dict) else None
        if isinstance(method, dict):
            yield from _method_refs(method, ("profiles", i, "commands", str(name), "method"),
                                    device, entry)  # fmt: skip


def _method_refs(
    method: dict[str, Any], loc: Loc, device: str, entry: Any
) -> Iterator[tuple[Loc, str]]:
    """A command bound to a method: the device's driver must call methods, and address the
    object and method nodes as written (its config model says: ``method_address_error``)."""
    driver = entry.get("driver") if isinstance(entry, dict) else None
    spec = driver_spec(driver) if isinstance(driver, str) else None
    if spec is None:  # an unknown driver is reported by the schema
        return
    model = spec.config_model
    if not model.calls_methods:
        why = f"its driver {driver!r} calls no methods (bind tag writes instead)"
        yield loc, f"device {device!r} cannot take a method call: {why}"
        return
    for part in ("object", "method"):
        ref = method.get(part)
        if not isinstance(ref, dict):
            continue
        node, path = ref.get("node"), ref.get("browse_path")
        if not isinstance(node, str | None) or not isinstance(path, str | None):
            continue
        if (node is None) == (path is None):  # reported by the schema
            continue
        error = model.method_address_error(NodeRef(node, path))
        if error is not None:
            yield (*loc, part, "node" if node is not None else "browse_path"), error


def _telemetry_refs(entry: Any, i: int, validate: DeviceValidator) -> Iterator[tuple[Loc, str]]:
    """A device's ``telemetry:`` names tags of its tag map, of a known type (telemetry/config)."""
    if not isinstance(entry, dict) or entry.get("telemetry") is None:
        return
    try:
        dev = validate(i, entry)
    except ValidationError:  # reported by the schema
        return
    for where, message in plan_errors(dev):
        yield ("devices", i, *where), message


def _entries(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def cross_checks(data: dict[str, Any], validate: DeviceValidator) -> Iterator[tuple[Loc, str]]:
    """Yield (location, message) for each duplicate id and each broken reference."""
    devices: dict[str, set[str] | None] = {}
    raw: dict[str, Any] = {}  # device id -> its entry as written
    for i, dev in enumerate(_entries(data, "devices")):
        dev_id = dev.get("id") if isinstance(dev, dict) else None
        if not isinstance(dev_id, str):
            continue
        if dev_id in devices:
            yield ("devices", i, "id"), f"duplicate device id {dev_id!r}"
            continue
        devices[dev_id] = _device_tags(i, dev, validate)
        raw[dev_id] = dev
        yield from _telemetry_refs(dev, i, validate)
    yield from shared_port_errors(_entries(data, "devices"))  # Modbus RTU devices on one port
    sims: set[str] = set()
    for i, sim in enumerate(_entries(data, "simulators")):
        sim_id = sim.get("id") if isinstance(sim, dict) else None
        if isinstance(sim_id, str):
            if sim_id in sims:
                yield ("simulators", i, "id"), f"duplicate simulator id {sim_id!r}"
            sims.add(sim_id)
    if isinstance(data.get("sparkplug"), dict) and data.get("telemetry") is None:
        yield (
            ("sparkplug",),
            (
                "Sparkplug B publishes the tag telemetry: add a telemetry: section (and "
                "telemetry: on the devices whose tags it publishes)"
            ),
        )
    yield from _one_trace_store(data)
    yield from _wholesaler_codes(data)
    for i, prof in enumerate(_entries(data, "profiles")):
        if not isinstance(prof, dict) or not isinstance(prof.get("device"), str):
            continue
        device = prof["device"]
        if device not in devices:
            known = ", ".join(sorted(devices)) or "none"
            yield ("profiles", i, "device"), f"no device {device!r} (devices: {known})"
            continue
        spec = _spec(prof)
        tags = devices[device]
        overrides = prof.get("tags")
        overrides = overrides if isinstance(overrides, dict) else {}
        if spec is None or tags is None:
            continue
        yield from _command_refs(prof, i, device, tags, raw.get(device))
        roles = {r.name for r in spec.roles}
        for role in overrides:
            if role not in roles:
                have = ", ".join(sorted(roles))
                yield (
                    ("profiles", i, "tags", role),
                    f"profile {spec.name!r} has no role {role!r} (roles: {have})",
                )
        bound = spec.bind({k: str(v) for k, v in overrides.items()}, tags, prof)
        for role, tag in bound.items():
            if tag not in tags:
                where: Loc = (
                    ("profiles", i, "tags", role)
                    if role in overrides
                    else ("profiles", i, "device")
                )
                have = ", ".join(sorted(tags))
                yield (
                    where,
                    f"device {device!r} has no tag {tag!r} for role {role!r} (tags: {have})",
                )


def _wholesaler_codes(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """A wholesaler prints no codes: every code it scans carries a producer's Annex A code
    (QB/T 5279-2018 6.2), never the wholesaler's own id, so its scanner profiles must accept
    other enterprises' codes (``codes.own_enterprise_only: false``) or name the one producer
    they take (``codes.enterprise``); otherwise every scan would be refused as foreign."""
    g = data.get("gateway")
    if not isinstance(g, dict) or g.get("kind") != "wholesaler":
        return
    for i, prof in enumerate(_entries(data, "profiles")):
        if not isinstance(prof, dict):
            continue
        spec = _spec(prof)
        if spec is None or "codes" not in spec.config_model.model_fields:
            continue
        codes = prof.get("codes")
        codes = codes if isinstance(codes, dict) else {}
        if codes.get("own_enterprise_only", True) is True and codes.get("enterprise") is None:
            loc: Loc = ("profiles", i, "codes") if "codes" in prof else ("profiles", i)
            yield loc, (
                f"gateway.kind is wholesaler: profile {spec.name!r} would refuse every code "
                "(codes carry their producer's Annex A code, QB/T 5279-2018 6.2, never the "
                "wholesaler's id): set codes.own_enterprise_only: false (any producer of "
                "Annex A) or codes.enterprise (one producer)"
            )


def _one_trace_store(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Every profile with a ``store:`` (the scanner and KPI profiles) names the same trace
    store: the code index, the bindings and the KPI counters of a line are one database, or a
    bag bound by one scanner is unknown to the next (QB/T 5279-2018 8.2)."""
    first: tuple[int, str, str] | None = None  # (index, profile device, store)
    for i, prof in enumerate(_entries(data, "profiles")):
        if not isinstance(prof, dict):
            continue
        spec = _spec(prof)
        field = spec.config_model.model_fields.get("store") if spec is not None else None
        if field is None:
            continue
        store = str(Path(str(prof.get("store", field.default))))
        if first is None:
            first = (i, str(prof.get("device")), store)
        elif store != first[2]:
            where: Loc = ("profiles", i, "store") if "store" in prof else ("profiles", i)
            yield (
                where,
                f"trace store {store!r} differs from {first[2]!r} of profiles[{first[0]}] "
                f"(device {first[1]!r}): every traceability profile of a line must name the "
                "same store",
            )


def profile_warnings(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Yield (location, message) for settings a profile needs that its device lacks, where the
    map still runs (``saltgw validate`` prints them as warnings): a full-image profile (CCP)
    on an OPC UA device that reports only what changed."""
    devices = {
        d["id"]: d
        for d in _entries(data, "devices")
        if isinstance(d, dict) and isinstance(d.get("id"), str)
    }
    for i, prof in enumerate(_entries(data, "profiles")):
        if not isinstance(prof, dict) or not isinstance(prof.get("device"), str):
            continue  # a malformed entry: the schema reports it
        spec = _spec(prof)
        dev = devices.get(prof["device"])
        if spec is None or not spec.full_image or dev is None or dev.get("driver") != "opcua":
            continue
        if dev.get("mode", "subscribe") == "subscribe" and dev.get("report", "changes") != "all":
            yield (
                ("profiles", i, "device"),
                f"profile {spec.name!r} reads every tag of each reading, and OPC UA device "
                f"{dev['id']!r} reports only the tags that changed: set report: all on it "
                "(docs/profiles.md), or its records will miss values",
            )
