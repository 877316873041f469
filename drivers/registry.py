"""Find drivers through the ``saltgw.drivers`` entry point group.

A third-party package registers ``[project.entry-points."saltgw.drivers"] mydev = "pkg:SPEC"``
where ``SPEC`` is a :class:`drivers.base.DriverSpec`; nothing in the core changes.

An entry point that fails to load (its package raises on import, or it is not a DriverSpec) is
logged and left out, so that it never stops the gateway; :func:`driver_load_errors` keeps why,
so that a config naming that driver is told so rather than "unknown driver".
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from drivers.base import DriverSpec

__all__ = ["DriverLoadError", "driver_load_errors", "driver_specs"]

log = logging.getLogger(__name__)
GROUP = "saltgw.drivers"


class DriverLoadError(Exception):
    """An entry point in ``saltgw.drivers`` could not be loaded or is not a DriverSpec."""


@cache
def _load() -> tuple[dict[str, DriverSpec], dict[str, DriverLoadError]]:
    specs: dict[str, DriverSpec] = {}
    errors: dict[str, DriverLoadError] = {}
    for ep in entry_points(group=GROUP):
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
                specs[spec.name] = spec
                continue
        log.error("driver %s", why)
        errors.setdefault(ep.name, DriverLoadError(why))
    return specs, errors


def driver_specs() -> dict[str, DriverSpec]:
    """All installed drivers by name. A broken plugin is logged and skipped, never fatal."""
    return _load()[0]


def driver_load_errors() -> dict[str, DriverLoadError]:
    """Drivers installed but unusable, by entry point name: why each failed to load."""
    return _load()[1]
