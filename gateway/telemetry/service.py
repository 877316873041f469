"""Tag telemetry in a running gateway: readings and device states in, records to the outputs.

:class:`Telemetry` is what :mod:`gateway.runtime` holds when the config has ``telemetry:``.
On the asyncio loop, for each reading of a device with ``telemetry:``, the device's
:class:`~gateway.telemetry.filter.ExceptionFilter` picks the points to report and the store
takes them (never blocking: gateway/telemetry/store.py). A device going offline or into fault
gives a record with every tag ``stale``; a tag in ``Reading.errors`` is ``bad``.

Never at the expense of traceability: it runs before the profiles, and the runtime catches
anything it raises (counted in :attr:`Telemetry.failures`, logged), so the events go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.base import DeviceConfigBase, Reading
from gateway.telemetry.config import TelemetrySection, device_plan, store_path
from gateway.telemetry.feed import StoreFeed
from gateway.telemetry.filter import ExceptionFilter
from gateway.telemetry.record import TagMeta, TelemetryOutput
from gateway.telemetry.store import TelemetryStore, WhenFull

__all__ = ["Telemetry"]

log = logging.getLogger(__name__)


class Telemetry:
    def __init__(
        self,
        section: TelemetrySection,
        devices: list[DeviceConfigBase],
        journal_path: Path,
        outputs: list[TelemetryOutput],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.section = section
        self.clock = clock
        self.filters: dict[str, ExceptionFilter] = {}
        metas: list[TagMeta] = []
        for dev in devices:
            dev_metas, policies = device_plan(dev)
            if policies:
                self.filters[dev.id] = ExceptionFilter(policies)
                metas += dev_metas
        self.outputs = outputs
        self.store = TelemetryStore(
            store_path(section, journal_path),
            metas,
            [o.name for o in outputs],
            max_records=section.max_records,
            max_age_secs=section.max_age_secs,
            when_full=WhenFull(section.when_full),
        )
        self.failures = 0  # readings or states telemetry failed on (logged; events unaffected)
        if not outputs:
            log.warning("telemetry: no output configured (telemetry.uns is false and no other "
                        "output): tag values are filtered and discarded")  # fmt: skip

    @property
    def metas(self) -> list[TagMeta]:
        return self.store.metas

    def start(self) -> None:
        self.store.open()
        for out in self.outputs:
            out.start(StoreFeed(self.store, out.name))

    def on_reading(self, reading: Reading) -> None:
        """Filter one reading (its ``ts`` already in the line's zone) into the store."""
        f = self.filters.get(reading.device)
        if f is None:
            return
        points = f.offer(self.clock(), reading.values, reading.errors)
        if points:
            self.store.append(reading.device, reading.ts, points)

    def on_offline(self, device: str, ts: datetime) -> None:
        """The device went offline or into fault: every tag ``stale`` (last good value)."""
        f = self.filters.get(device)
        if f is None:
            return
        points = f.stale(self.clock())
        if points:
            self.store.append(device, ts, points)

    def alive(self) -> bool:
        return self.store.alive() and all(o.alive() for o in self.outputs)

    def problems(self) -> list[str]:
        """Why telemetry is not delivering (for /healthz)."""
        out = []
        if not self.store.alive():
            out.append("telemetry store writer is not running")
        elif self.store.failing is not None:
            out.append(f"telemetry store: {self.store.failing}")
        for o in self.outputs:
            if not o.alive():
                out.append(f"telemetry output {o.name}: thread not running")
                continue
            stalled: Any = getattr(o, "stalled", None)
            why = stalled() if callable(stalled) else None
            if why is not None and self.store.backlog:
                out.append(f"telemetry output {o.name}: {why}")
        return out

    def stop(self, timeout: float = 5.0) -> None:
        """Commit what was appended, let the outputs deliver it (bounded), close the store."""
        if not self.store.alive():
            return
        self.store.flush(timeout)
        for o in self.outputs:
            try:
                o.stop(timeout)
            except Exception:  # one output must not keep the store open
                log.exception("telemetry output %s did not stop cleanly", o.name)
        self.store.close(timeout)
        log.info("telemetry store closed; %d undelivered records kept", self.store.stats.stored)
