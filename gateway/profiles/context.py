"""Optional profile hooks for profiles that need the line they run on.

The basic seam (gateway/profiles/base.py) gives a profile its config, its tag bindings and the
time zone. The traceability profiles (scanners, case packer, KPIs) also need the line's identity
(the enterprise code their traceability codes must carry, the line id that scopes their pending
slots) and the line's current batch (10.2.4: a bag joins the batch being packed). The gateway
calls :meth:`LineAware.bind_line` once, right after creating a profile that has it::

    class MyProfile:
        def bind_line(self, line: LineContext) -> None: ...

A profile that implements :class:`Resumable` puts a ``cursor`` on its events (e.g. the device
counter it last reported) and gets the last committed cursors back once the journal is open,
before the first reading, so it resumes where its last accepted event left off.

A profile that also implements :class:`KpiSource` is asked once a second for a KPI message
(``kpi_message(now)``, None when none is due); the gateway publishes it retained on
``…/{line}/kpi`` (gateway/runtime.py, ``_tick``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from gateway.events import Origin

__all__ = ["KpiSource", "LineAware", "LineContext", "Resumable"]


class LineContext:
    """The line a profile runs on: its origin, and its current batch (None outside a batch)."""

    def __init__(self, origin: Origin, batch: Callable[[], str | None] = lambda: None) -> None:
        self.origin = origin
        self._batch = batch

    @property
    def batch(self) -> str | None:
        return self._batch()

    @property
    def enterprise(self) -> str:
        return self.origin.enterprise

    @property
    def line(self) -> str:
        return self.origin.line


@runtime_checkable
class LineAware(Protocol):
    def bind_line(self, line: LineContext) -> None: ...


@runtime_checkable
class Resumable(Protocol):
    def resume(self, cursors: Mapping[str, int]) -> None: ...


@runtime_checkable
class KpiSource(Protocol):
    def kpi_message(self, now: datetime) -> dict[str, Any] | None: ...
