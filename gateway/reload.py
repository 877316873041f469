"""What a reload of the map changes (docs/operations.md, "Changing the map on a running line").

:func:`plan_reload` compares the running config with the new one, device by device: a device
is *changed* when its entry or any profile bound to it differs (compared as validated, so
reordering keys or adding a comment changes nothing), *added* or *removed* by its id; the
others keep running untouched. Only ``devices:`` and ``profiles:`` change live; a difference
anywhere else is a refusal naming the section (a restart applies it):

- ``gateway``, ``mqtt``, ``journal``, ``commands``, ``bridge``, ``telemetry``, ``sparkplug``:
  the identity in every event and topic, the journal and its seq, the broker link and the
  forwarder, the threads that serve them are never restarted (that is what keeps seq gapless);
- the trace store the traceability profiles share (it commits in the journal's transactions);
- with ``telemetry:``, which tags a device reports (Sparkplug births, the store's tag list).

``simulators:`` and ``resolver:`` are not used by ``saltgw run``: their changes are ignored.

:func:`reload_map` applies a plan to a running :class:`~gateway.runtime.Gateway`: the file is
read and validated completely first (the errors ``saltgw validate`` prints), the new drivers and
profiles are created, and only then are devices stopped and started; the journal, the
forwarder and the broker link are never touched, so ``seq`` stays gapless and no event is sent
twice. The outcome is an event: ``config.reload``, or ``alarm.config`` when refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands import command_maps
from gateway.config.loader import ConfigError, LoadedMap, read_map
from gateway.config.models import ConfigBase
from gateway.events import EventDraft
from gateway.profiles.context import Resumable
from gateway.telemetry.config import device_plan

if TYPE_CHECKING:
    from gateway.runtime import Gateway

__all__ = ["LIVE_SECTIONS", "ReloadPlan", "plan_reload", "reload_map"]

log = logging.getLogger(__name__)

LIVE_SECTIONS = ("devices", "profiles")
IGNORED_SECTIONS = ("simulators", "resolver")


@dataclass(frozen=True)
class ReloadPlan:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # why it cannot be applied live


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _profiles_by_device(cfg: ConfigBase) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for p in cfg.profiles:
        out.setdefault(p.device, []).append(_dump(p))
    return out


def _stores(cfg: ConfigBase) -> set[str]:
    return {str(s) for p in cfg.profiles if isinstance(s := getattr(p, "store", None), Path)}


def plan_reload(old: ConfigBase, new: ConfigBase) -> ReloadPlan:
    """Which devices to start, stop and restart; or why the new config cannot run live."""
    refusals = [
        f"{name}: cannot change while saltgw runs; restart it to apply (only devices: and "
        "profiles: change on a reload)"
        for name in type(old).model_fields
        if name not in LIVE_SECTIONS + IGNORED_SECTIONS
        and _dump(getattr(old, name)) != _dump(getattr(new, name))
    ]
    if _stores(old) != _stores(new):
        was, now = sorted(_stores(old)) or ["none"], sorted(_stores(new)) or ["none"]
        refusals.append(
            f"profiles: the line's trace store cannot change while saltgw runs ({', '.join(was)} "
            f"→ {', '.join(now)}); restart it to apply"
        )
    old_devs = {d.id: d for d in old.devices}
    new_devs = {d.id: d for d in new.devices}
    old_profs, new_profs = _profiles_by_device(old), _profiles_by_device(new)
    plan = ReloadPlan(refusals=refusals)
    for dev_id in new_devs:
        if dev_id not in old_devs:
            plan.added.append(dev_id)
        elif _dump(old_devs[dev_id]) != _dump(new_devs[dev_id]) or old_profs.get(
            dev_id
        ) != new_profs.get(dev_id):
            plan.changed.append(dev_id)
        else:
            plan.unchanged.append(dev_id)
    plan.removed.extend(d for d in old_devs if d not in new_devs)
    if new.telemetry is not None:
        refusals.extend(
            _telemetry_refusals(old_devs, new_devs, [*plan.added, *plan.removed, *plan.changed])
        )
    return plan


def _telemetry_refusals(
    old: dict[str, Any], new: dict[str, Any], touched: Iterable[str]
) -> list[str]:
    out = []
    for dev_id in touched:
        before = device_plan(old[dev_id]) if dev_id in old else ([], {})
        after = device_plan(new[dev_id]) if dev_id in new else ([], {})
        if before != after:
            out.append(
                f"devices ({dev_id}): the tags its telemetry reports cannot change while saltgw "
                "runs (Sparkplug births, the telemetry store's tag list); restart it to apply"
            )
    return out


async def reload_map(gw: Gateway, by: str) -> dict[str, Any]:
    """Read ``gw``'s map file again and apply it (see the module's docstring); the outcome,
    as ``saltgw reload`` prints it. ``by``: who asked (a user, or the signal)."""
    if gw.map_file is None:
        return {"ok": False, "errors": ["this gateway was not started from a map file"]}
    file = gw.map_file
    log.info("reloading %s (asked by %s)", file, by)
    try:
        loaded = await asyncio.to_thread(read_map, file, ("devices",))
    except ConfigError as exc:
        return await _refuse(gw, by, file, exc.sha256, [str(i) for i in exc.issues])
    plan = plan_reload(gw.cfg, loaded.cfg)
    if plan.refusals:
        return await _refuse(gw, by, file, loaded.sha256, plan.refusals)
    try:
        started = {d: _prepare(gw, loaded.cfg, d) for d in [*plan.added, *plan.changed]}
    except Exception as exc:  # a driver or profile that cannot be created: nothing changed
        log.exception("reload of %s: cannot create the new devices", file)
        return await _refuse(gw, by, file, loaded.sha256, [f"{type(exc).__name__}: {exc}"])
    for device in [*plan.removed, *plan.changed]:
        await gw._stop_device(device)
    for device in plan.removed:  # its retained state message would say it is still there
        gw.forwarder.publish_control(gw.topics.state(device), b"", retain=True)
    # what the stopped devices' profiles handed in is committed: their cursors are current
    await asyncio.wrap_future(gw.journal.append([]))
    cursors = await asyncio.to_thread(gw.journal.cursors) if started else {}
    maps = command_maps(loaded.cfg.profiles)  # the unchanged devices' are the same
    gw.commands.command_maps = dict(maps)  # read when a device is attached
    gw.dcmd.set_command_maps(maps)
    for sup, profiles in started.values():
        for prof in profiles:
            if isinstance(prof, Resumable):  # e.g. a weighing counter goes on, not from scratch
                prof.resume(cursors)
        gw._start_device(sup, profiles)
    return await _applied(gw, by, loaded, plan)


def _prepare(gw: Gateway, cfg: ConfigBase, device: str) -> tuple[Any, list[Any]]:
    dev = next(d for d in cfg.devices if d.id == device)
    profiles = gw._new_profiles(cfg, device)
    return gw._new_supervisor(dev, profiles), profiles


async def _applied(gw: Gateway, by: str, loaded: LoadedMap, plan: ReloadPlan) -> dict[str, Any]:
    previous, gw.cfg, gw.map_sha256 = gw.map_sha256, loaded.cfg, loaded.sha256
    data: dict[str, Any] = {
        "file": loaded.file,
        "sha256": loaded.sha256,
        "previous_sha256": previous,
        "added": plan.added,
        "removed": plan.removed,
        "changed": plan.changed,
        "unchanged": len(plan.unchanged),
        "by": by,
    }
    log.info(
        "reloaded %s (sha256 %s): added %s; removed %s; changed %s; %d unchanged kept running",
        loaded.file, loaded.sha256[:12], _names(plan.added), _names(plan.removed),
        _names(plan.changed), len(plan.unchanged),
    )  # fmt: skip
    for warning in loaded.warnings:
        log.warning("%s", warning)
    await gw.accept([EventDraft("config.reload", datetime.now(gw.tz), data)])
    return {"ok": True, **data}


async def _refuse(
    gw: Gateway, by: str, file: str, sha256: str | None, errors: list[str]
) -> dict[str, Any]:
    log.error("reload of %s refused; the running map (sha256 %s) stays:", file,
              (gw.map_sha256 or "?")[:12])  # fmt: skip
    for line in errors:
        log.error("%s", line)
    data: dict[str, Any] = {
        "detail": f"reload of {file} refused ({len(errors)} errors); the map that was running "
        "still runs: correct the file and reload again",
        "file": file,
        "sha256": sha256,
        "running_sha256": gw.map_sha256,
        "errors": errors,
        "by": by,
    }
    await gw.accept([EventDraft("alarm.config", datetime.now(gw.tz), data)])
    return {"ok": False, **data}


def _names(ids: list[str]) -> str:
    return ", ".join(ids) or "none"
