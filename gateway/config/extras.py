"""Which optional packages (saltgw's extras) a config needs, and which of them are missing.

The core install (``pip install saltgw``) validates any config; the protocol stacks come with
extras (``pip install 'saltgw[modbus]'``, pyproject.toml). Each driver's and simulator's spec
names its extra and the top-level modules it imports when it is created (``DriverSpec.extra``,
``.requires``); they are looked up with ``importlib.util.find_spec``, never imported, so this
check costs nothing and cannot fail half-way through an import.

``saltgw validate`` prints what is missing as warnings; ``saltgw run``, ``sim`` and ``demo``
refuse to start, listing every missing package at once (gateway/cli.py). A third-party driver
whose entry point fails to load is reported with why (:func:`unusable_drivers`), not as an
unknown driver.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.registry import driver_load_error, driver_spec
from gateway.config.models import ConfigBase

__all__ = [
    "MissingExtra",
    "missing_extras",
    "missing_modules",
    "needs_message",
    "unusable_drivers",
]

Loc = tuple[str | int, ...]
Needs = Mapping[str | None, Sequence[str]]  # extra (None: pip name = module name) -> modules


def missing_modules(modules: Iterable[str]) -> tuple[str, ...]:
    """Those of ``modules`` (top-level names) that cannot be found; nothing is imported."""
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing; a module without a spec
            found = False
        if not found:
            missing.append(name)
    return tuple(missing)


def needs_message(what: str, needs: Needs) -> str | None:
    """``"{what} needs X, Y, not installed: pip install 'saltgw[extra]'"``, or None when every
    module of ``needs`` is installed."""
    missing: list[str] = []
    install: list[str] = []
    for extra, modules in sorted(needs.items(), key=lambda kv: kv[0] is None):  # extras first
        absent = missing_modules(modules)
        missing += absent
        if absent:
            install += [f"'saltgw[{extra}]'"] if extra else list(absent)
    if not missing:
        return None
    return f"{what} needs {', '.join(missing)}, not installed: pip install {' '.join(install)}"


@dataclass(frozen=True, slots=True)
class MissingExtra:
    """An entry of a config whose driver or simulator needs packages that are not installed."""

    loc: Loc  # the key that picks the implementation: ("devices", 2, "driver")
    entry: str  # "devices[2] (cw1)"
    message: str  # "driver 'modbus' needs pymodbus, not installed: pip install 'saltgw[modbus]'"

    @property
    def section(self) -> str:
        return str(self.loc[0])

    def __str__(self) -> str:
        return f"{self.entry}: {self.message}"


def missing_extras(cfg: ConfigBase) -> list[MissingExtra]:
    """Every device and simulator of ``cfg`` that cannot be created on this install."""
    out: list[MissingExtra] = []
    for i, dev in enumerate(cfg.devices):
        spec = driver_spec(dev.driver)
        if spec is None:
            continue
        msg = needs_message(f"driver {spec.name!r}", {spec.extra: spec.requires})
        if msg is not None:
            out.append(MissingExtra(("devices", i, "driver"), f"devices[{i}] ({dev.id})", msg))
    if not cfg.simulators:  # the simulators' registry is imported only for a file that has some
        return out
    from firmware_sim.registry import simulator_spec

    for i, sim in enumerate(cfg.simulators):
        sspec = simulator_spec(sim.kind)
        if sspec is None:
            continue
        needs: dict[str | None, list[str]] = {sspec.extra: list(sspec.requires)}
        for extra, modules in sim.optional_needs().items():
            needs.setdefault(extra, []).extend(modules)
        msg = needs_message(f"simulator {sspec.name!r}", needs)
        if msg is not None:
            out.append(MissingExtra(("simulators", i, "kind"), f"simulators[{i}] ({sim.id})", msg))
    return out


def unusable_drivers(data: Mapping[str, Any]) -> Iterator[tuple[int, str]]:
    """(index, message) of each ``devices:`` entry naming a driver that is installed but whose
    entry point failed to load (drivers/registry.py); only the entry points of the drivers
    named are loaded."""
    devices = data.get("devices")
    for i, dev in enumerate(devices if isinstance(devices, list) else []):
        name = dev.get("driver") if isinstance(dev, dict) else None
        if not isinstance(name, str):
            continue
        broken = driver_load_error(name)
        if broken is not None and driver_spec(name) is None:
            yield i, f"driver {name!r} is installed but cannot be used: {broken}"
