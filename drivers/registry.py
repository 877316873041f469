"""Find drivers through the ``saltgw.drivers`` entry point group.

A third-party package registers ``[project.entry-points."saltgw.drivers"] mydev = "pkg:SPEC"``
where ``SPEC`` is a :class:`drivers.base.DriverSpec`; nothing in the core changes.

An entry point that fails to load (its package raises on import, or it is not a DriverSpec) is
logged and left out, so that it never stops the gateway; :func:`driver_load_errors` keeps why,
so that a config naming that driver is told so rather than "unknown driver".

Entry points are loaded by name when first asked for (:func:`driver_spec`): a gateway whose
map names only ``modbus`` and ``scanner`` never imports the OPC UA or camera config models
(docs/performance.md, "Gateway memory"). :func:`driver_specs` loads them all (the JSON Schema,
a config with a mistake). Either way an entry point is loaded, and a broken one logged, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from drivers.base import DriverSpec

__all__ = [
    "DriverLoadError",
    "driver_load_error",
    "driver_load_errors",
    "driver_spec",
    "driver_specs",
]

log = logging.getLogger(__name__)
GROUP = "saltgw.drivers"


class DriverLoadError(Exception):
    """An entry point in ``saltgw.drivers`` could not be loaded or is not a DriverSpec."""


class _Registry:
    """What has been loaded so far: specs and failures by entry point name."""

    def __init__(self) -> None:
        self.specs: dict[str, DriverSpec] = {}
        self.errors: dict[str, DriverLoadError] = {}
        self.tried: set[str] = set()  # names looked up (found or not)
        self.order: list[str] | None = None  # every entry point name, once all were loaded
        self.lock = threading.Lock()

    def load(self, eps: Iterable[EntryPoint]) -> None:
        for ep in eps:
            where = f"entry point {ep.name} = {ep.value!r}"
            try:
                spec = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop the gateway
                why = f"{where} failed to load: {type(exc).__name__}: {exc}"
            else:
                if not isinstance(spec, DriverSpec):
                    why = f"{where} is not a DriverSpec (got {type(spec).__name__})"
                elif spec.name != ep.name:
                    why = f"{where} names itself {spec.name!r}"
                else:
                    self.specs[spec.name] = spec
                    continue
            log.error("driver %s", why)
            self.errors.setdefault(ep.name, DriverLoadError(why))

    def named(self, name: str) -> None:
        with self.lock:
            if self.order is None and name not in self.tried:
                self.load(entry_points(group=GROUP, name=name))
                self.tried.add(name)

    def every(self) -> list[str]:
        with self.lock:
            if self.order is None:
                eps = list(entry_points(group=GROUP))
                self.load(ep for ep in eps if ep.name not in self.tried)
                self.order = list(dict.fromkeys(ep.name for ep in eps))
            return self.order


_REGISTRY = _Registry()


def driver_spec(name: str) -> DriverSpec | None:
    """The installed driver ``name`` (only its entry points are loaded), or None when there
    is none or it failed to load (:func:`driver_load_error` says why)."""
    _REGISTRY.named(name)
    return _REGISTRY.specs.get(name)


def driver_load_error(name: str) -> DriverLoadError | None:
    """Why the installed driver ``name`` cannot be used, or None."""
    _REGISTRY.named(name)
    return _REGISTRY.errors.get(name)


def driver_specs() -> dict[str, DriverSpec]:
    """All installed drivers by name, in entry point order. A broken plugin is logged and
    skipped, never fatal."""
    return {n: _REGISTRY.specs[n] for n in _REGISTRY.every() if n in _REGISTRY.specs}


def driver_load_errors() -> dict[str, DriverLoadError]:
    """Drivers installed but unusable, by entry point name: why each failed to load."""
    order = _REGISTRY.every()
    return {n: _REGISTRY.errors[n] for n in order if n in _REGISTRY.errors}
