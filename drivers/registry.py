"""Find drivers through the ``saltgw.drivers`` entry point group.

A third-party package registers ``[project.entry-points."saltgw.drivers"] mydev = "pkg:SPEC"``
where ``SPEC`` is a :class:`drivers.base.DriverSpec`; nothing in the core changes.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from drivers.base import DriverSpec

__all__ = ["DriverLoadError", "driver_specs"]

log = logging.getLogger(__name__)
GROUP = "saltgw.drivers"


class DriverLoadError(Exception):
    """An entry point in ``saltgw.drivers`` could not be loaded or is not a DriverSpec."""


@cache
def driver_specs() -> dict[str, DriverSpec]:
    """All installed drivers by name. A broken plugin is logged and skipped, never fatal."""
    specs: dict[str, DriverSpec] = {}
    for ep in entry_points(group=GROUP):
        try:
            spec = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the gateway
            log.error("driver entry point %r failed to load: %s", ep.value, exc)
            continue
        if not isinstance(spec, DriverSpec):
            log.error("driver entry point %r is not a DriverSpec (got %r)", ep.value, type(spec))
            continue
        if spec.name != ep.name:
            log.error("driver entry point %r names itself %r; skipped", ep.name, spec.name)
            continue
        specs[spec.name] = spec
    return specs
