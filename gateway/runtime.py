"""The gateway process: devices → profiles → journal → broker, wired together.

Threads: paho's network loop, the journal writer and the forwarder; everything else (drivers,
supervisors, profiles) runs on one asyncio loop. Shutdown (SIGINT/SIGTERM) stops the devices,
waits for every accepted event to be committed, gives the broker a few seconds to acknowledge
what is in flight, publishes status ``offline`` and closes the journal: whatever was not
acknowledged stays on disk and is sent on the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.base import Reading
from drivers.registry import driver_spec
from gateway.command_auth import Authoriser, Receiver, seen_path_for
from gateway.commands import CommandRouter, Operable, command_maps
from gateway.config.cleartext import cleartext_warnings
from gateway.config.models import ConfigBase
from gateway.events import Event, EventDraft, Origin
from gateway.journal import Journal, WhenFull, journal_chain_key
from gateway.mqtt import Forwarder, MqttLink
from gateway.profiles import Profile, profile_spec
from gateway.profiles.context import KpiSource, LineAware, LineContext, Resumable
from gateway.signing import EnvelopeSigner, event_key
from gateway.supervisor import DeviceState, DeviceSupervisor, State
from gateway.telemetry.record import TelemetryOutput
from gateway.telemetry.service import Telemetry
from gateway.telemetry.sparkplug.commands import CommandMapSink
from gateway.topics import Topics
from gateway.tracedb import TraceDb, open_trace_db

if TYPE_CHECKING:
    from gateway.records.router import RecordRouter

__all__ = ["Gateway"]

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_SECS = 10.0  # broker's time to acknowledge what is in flight at shutdown
# Readings whose events are handed to the journal but not yet committed, at most. The devices
# are read meanwhile (no device is ever acknowledged anything, so nothing is promised early):
# the journal's group commit then takes many readings per fsync. When the journal blocks
# (full, or a full disk) the oldest is awaited: back-pressure on every device, as before.
READINGS_IN_FLIGHT = 256


class Gateway:
    def __init__(
        self,
        cfg: ConfigBase,
        *,
        broker_url: str | None = None,
        map_file: str | None = None,
        map_sha256: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.map_file = map_file  # what a reload reads again (gateway/reload.py)
        self.map_sha256 = map_sha256
        g = cfg.gateway
        self.tz = g.tz()
        self.origin = Origin(g.id, g.enterprise, g.site, g.line)
        self.topics = Topics(cfg.mqtt.topic_prefix, g.enterprise, g.site, g.line, g.id)
        self.batch: str | None = None
        self.journal = Journal(
            Path(cfg.journal.path),
            self.origin,
            max_events=cfg.journal.max_events,
            when_full=WhenFull(cfg.journal.when_full),
            keep_delivered_secs=cfg.journal.keep_delivered_secs,
            keep_delivered_events=cfg.journal.keep_delivered_events,
            chain_key=journal_chain_key(cfg.journal),
            signer=EnvelopeSigner(g.id, event_key(cfg)),  # events signed (gateway/signing.py)
        )
        self.link = MqttLink(
            cfg.mqtt,
            self.topics,
            cfg.mqtt.client_id or f"saltgw-{g.id}",
            broker_url=broker_url,
        )
        self.forwarder = Forwarder(
            self.journal,
            self.link,
            self.topics,
            cfg.mqtt.inflight,
            backoff_min_secs=cfg.mqtt.reconnect_min_secs,
            backoff_max_secs=cfg.mqtt.reconnect_max_secs,
            ack_timeout_secs=cfg.mqtt.ack_timeout_secs,
        )
        self.profiles: dict[str, list[Profile]] = {}
        for dev in cfg.devices:
            if profs := self._new_profiles(cfg, dev.id):
                self.profiles[dev.id] = profs
        # the line's trace store commits in the journal's transactions: a scan's rows and its
        # events together or not at all (gateway/tracedb.py, docs/architecture.md)
        self.store = _shared_store(cfg)
        if self.store is not None:
            self.journal.share_transactions(self.store)
        self.supervisors: list[DeviceSupervisor] = []
        self._device_tasks: dict[str, asyncio.Task[None]] = {}
        self._reload_lock = asyncio.Lock()
        self._reloadable = False  # between the devices' start and the shutdown
        self._bad_tags: dict[str, dict[str, str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.exit_code = 0
        self.profile_failures = 0  # readings/ticks a profile raised on: their events are lost
        self._in_flight: deque[Future[list[Event]]] = deque()  # readings' appends, oldest first
        self.started = False  # devices are being supervised (for /healthz)
        self.bridge: Any = None  # gateway.bridge.service.Bridge when the config has bridge:
        self.commands = CommandRouter(  # MES write-back (docs/commands.md)
            self.topics,
            self.tz,
            lambda topic, body: self.forwarder.publish_control(topic, body, retain=False),
            command_maps(cfg.profiles),
            current_batch=lambda: self.batch,
            accept=self.accept,
            auth=Authoriser(  # closed without a commands: section (gateway/command_auth.py)
                cfg.commands,
                Receiver(g.enterprise, g.site, g.line, g.id),
                seen_path_for(Path(cfg.journal.path)),
            ),
        )
        self.commands.auth.announce()
        for profs in self.profiles.values():
            for prof in profs:
                if isinstance(prof, Operable):  # case/pallet label scanners
                    self.commands.attach_operable(prof)
        for warning in cleartext_warnings(cfg):  # secrets in clear, allowed per connection
            log.warning("%s", warning)
        self.forwarder.listen(self.topics.commands(), self.commands.on_message)
        self.records = _records(self)  # MES / LIMS records (docs/records.md)
        self.forwarder.listen(self.topics.records(), self.records.on_message)
        # Sparkplug DCMD writes: the MES allow-list, carried out by the command router
        self.dcmd = CommandMapSink(
            command_maps(cfg.profiles), cfg.commands, self.commands.write_tag
        )
        self.telemetry = _telemetry(cfg, self.topics, broker_url, self.dcmd)  # docs/events.md

    def _new_profiles(self, cfg: ConfigBase, device: str) -> list[Profile]:
        """The profiles ``cfg`` binds to ``device``, created afresh (at start, and for a
        device a reload starts or restarts)."""
        tags = next((d.tag_names() for d in cfg.devices if d.id == device), None)
        out: list[Profile] = []
        for pcfg in cfg.profiles:
            if pcfg.device != device:
                continue
            spec = profile_spec(pcfg.profile)
            assert spec is not None, pcfg.profile  # a validated config names shipped profiles
            # the settings as a dict only for a profile whose required roles depend on them:
            # dumping builds the profile model's own serializer (docs/performance.md)
            entry = pcfg.model_dump() if spec.required_for is not None else None
            bound = spec.bind(pcfg.tags, tags, entry)
            prof = spec.create(pcfg, bound, self.tz)
            if isinstance(prof, LineAware):  # traceability profiles (profiles/context.py)
                prof.bind_line(LineContext(self.origin, lambda: self.batch))
            out.append(prof)
        return out

    # -- accepting events ----------------------------------------------------------------------
    async def accept(self, drafts: list[EventDraft]) -> list[Event]:
        """Journal the drafts durably; returns the accepted events (with seq and id)."""
        if not drafts:
            return []
        return await asyncio.wrap_future(self.journal.append(self._stamp_batch(drafts)))

    def _staging(self) -> AbstractContextManager[object]:
        """Held while profiles run and their events are handed to the journal: the journal
        commits the trace store's writes only under it, so never without those events."""
        return self.store.lock if self.store is not None else nullcontext()

    def _hand_in(self, drafts: list[EventDraft]) -> Future[list[Event]] | None:
        """Under :meth:`_staging`: append the drafts, or an empty append when the profiles
        wrote the store without an event (e.g. a garbage frame counted), so it commits soon."""
        if drafts or (self.store is not None and self.store.staged):
            return self.journal.append(self._stamp_batch(drafts))
        return None

    async def _room(self) -> None:
        """With a shared store the journal admits an append beyond ``max_events`` rather than
        commit its trace writes without it; so wait here, before the profiles write, while the
        journal is full (``when_full: block``; bounded overshoot: the readings in flight)."""
        j = self.journal
        if self.store is None or j.when_full is not WhenFull.BLOCK:
            return
        while True:  # polled: acks (another thread) free the room; there is no event to await
            if j.stats.backlog < j.max_events or not j.alive():
                return
            await asyncio.sleep(0.05)

    def _stamp_batch(self, drafts: list[EventDraft]) -> list[EventDraft]:
        """Give each event the line's current batch (QB/T 5279 10.2.4: the batch is the thread
        that ties a line's records together). ``batch.start`` opens a batch, ``batch.end``
        (which still belongs to it) closes it."""
        out = []
        for d in drafts:
            if d.type == "batch.start" and isinstance(d.data.get("batch"), str):
                self.batch = d.data["batch"]
            if d.batch is None and self.batch is not None:
                d = _with_batch(d, self.batch)
            if d.type == "batch.end":
                self.batch = None
            out.append(d)
        return out

    async def _on_reading(self, reading: Reading) -> None:
        drafts: list[EventDraft] = []
        ts = reading.ts.astimezone(self.tz)
        reading = Reading(reading.device, ts, reading.values, reading.errors)
        if self.telemetry is not None:
            self._telemetry_reading(reading)
        drafts.extend(self._value_errors(reading))
        await self._room()
        with self._staging():
            for prof in self.profiles.get(reading.device, ()):
                try:
                    drafts.extend(prof.on_reading(reading))
                except Exception:  # a profile bug is not a device fault: log it, keep reading
                    self.profile_failures += 1
                    log.exception("profile for device %s failed on a reading", reading.device)
            fut = self._hand_in(drafts)
        if fut is not None:
            await self._pipelined(fut)

    def _telemetry_reading(self, reading: Reading) -> None:
        """Never at the expense of the events: a telemetry failure is logged and counted."""
        assert self.telemetry is not None
        try:
            self.telemetry.on_reading(reading)
        except Exception:
            self.telemetry.failures += 1
            log.exception("telemetry failed on a reading of device %s", reading.device)

    async def _pipelined(self, fut: Future[list[Event]]) -> None:
        """Keep at most READINGS_IN_FLIGHT appends unconfirmed; a failed one raises here (in
        the supervisor of whichever device comes next: the journal is the gateway's, not that
        device's, but the failure is logged with the reason all the same)."""
        q = self._in_flight
        q.append(fut)
        while q and q[0].done():
            q.popleft().result()
        if len(q) > READINGS_IN_FLIGHT:
            await asyncio.wrap_future(q.popleft())

    def _value_errors(self, reading: Reading) -> list[EventDraft]:
        """``alarm.device`` when the set of unreadable tags of a device changes."""
        before = self._bad_tags.get(reading.device, {})
        now = dict(reading.errors)
        if set(now) == set(before):
            return []
        self._bad_tags[reading.device] = now
        if now:
            detail = "; ".join(f"{t}: {why}" for t, why in sorted(now.items()))
            data: dict[str, Any] = {"state": "bad_value", "errors": now, "detail": detail}
        else:
            data = {"state": "values_ok", "errors": {}, "detail": "all tags readable again"}
        return [EventDraft("alarm.device", reading.ts, data, device=reading.device)]

    def _on_state(self, state: DeviceState, prev: DeviceState | None) -> None:
        payload = json.dumps(
            {
                "device": state.device,
                "state": str(state.state),
                "detail": state.detail,
                "ts": state.since.astimezone(self.tz).isoformat(timespec="milliseconds"),
                "gateway": self.origin.gateway,
            },
            ensure_ascii=False,
        ).encode()
        self.forwarder.publish_control(self.topics.state(state.device), payload, retain=True)
        if self.telemetry is not None and state.state != State.ONLINE:
            try:  # every tag of the device stale, with its last good value
                self.telemetry.on_offline(state.device, state.since.astimezone(self.tz))
            except Exception:
                self.telemetry.failures += 1
                log.exception("telemetry failed on the state of device %s", state.device)
        if not state.alarm or (state.state == State.ONLINE and prev is None):
            return  # rate-limited or only a new detail (supervisor.py); coming up is no alarm
        data: dict[str, Any] = {
            "state": str(state.state),
            "detail": state.detail,
            "previous": str(prev.state) if prev else None,
        }
        if state.suppressed:
            data["suppressed"] = state.suppressed
        draft = EventDraft("alarm.device", datetime.now(self.tz), data, device=state.device)
        assert self._loop is not None
        self._loop.create_task(self.accept([draft]), name=f"alarm-{state.device}")

    # -- running -------------------------------------------------------------------------------
    async def reload(self, by: str) -> dict[str, Any]:
        """Apply the map file again (gateway/reload.py); one reload at a time."""
        from gateway.reload import reload_map

        async with self._reload_lock:
            if not self._reloadable:  # the devices are being started or stopped
                log.warning("reload asked by %s while the gateway starts or stops: ignored", by)
                return {"ok": False, "errors": ["the gateway is starting or stopping; try again"]}
            return await reload_map(self, by)

    def _new_supervisor(self, dev: Any, profiles: list[Profile]) -> DeviceSupervisor:
        """A supervisor with a new driver for ``dev`` (not started)."""
        spec = driver_spec(dev.driver)
        assert spec is not None, dev.driver  # a validated config names installed drivers
        for prof in profiles:  # a profile's record counter keeps a reading to one record
            if isinstance(counter := getattr(prof, "snapshot_counter", None), str):
                dev = dev.with_snapshot_counter(counter)
        return DeviceSupervisor(dev.id, spec.create(dev), self._on_reading, self._on_state)

    def _attach_device(self, sup: DeviceSupervisor, profiles: list[Profile]) -> None:
        """Make ``sup``'s device part of the line, with ``profiles`` reading it (not started)."""
        if profiles:
            self.profiles[sup.device] = profiles
        for prof in profiles:
            if isinstance(prof, Operable):  # case/pallet label scanners
                self.commands.attach_operable(prof)
        self.supervisors.append(sup)
        self.commands.attach(sup)

    def _build_supervisors(self) -> None:
        for dev in self.cfg.devices:
            profiles = self.profiles.get(dev.id, [])
            self._attach_device(self._new_supervisor(dev, profiles), profiles)

    def _start_device(self, sup: DeviceSupervisor, profiles: list[Profile]) -> None:
        """Supervise ``sup``'s device from now on (a reload adds or restarts it)."""
        self._attach_device(sup, profiles)
        self._run_device(sup)

    def _run_device(self, sup: DeviceSupervisor) -> None:
        self._device_tasks[sup.device] = asyncio.create_task(sup.run(), name=f"device-{sup.device}")

    async def _stop_device(self, device: str) -> None:
        """Stop supervising ``device`` (a reload removed or changed it): a command being
        written to it finishes first; its driver is closed; events of its readings already
        handed to the journal are committed as always (none is lost)."""
        routed = self.commands.devices.get(device)
        if routed is not None:
            try:
                await asyncio.wait_for(routed.lock.acquire(), SHUTDOWN_DRAIN_SECS)
            except TimeoutError:
                log.warning("device %s: a command still runs; stopping it regardless", device)
        task = self._device_tasks.pop(device, None)
        if task is not None:
            task.cancel()
            _, stuck = await asyncio.wait([task], timeout=SHUTDOWN_DRAIN_SECS)
            if stuck:
                log.error("device %s did not stop within %g s; left behind", device,
                          SHUTDOWN_DRAIN_SECS)  # fmt: skip
        self.supervisors = [s for s in self.supervisors if s.device != device]
        self.commands.devices.pop(device, None)
        self.commands.operables.pop(device, None)
        self.profiles.pop(device, None)
        self._bad_tags.pop(device, None)

    async def run(self, stop: asyncio.Event) -> int:
        self._loop = asyncio.get_running_loop()
        self.commands.bind(self._loop)
        self.records.bind(self._loop)
        self.journal.open()
        log.info(
            "journal %s: %d undelivered events, last seq %d",
            self.journal.path,
            self.journal.stats.backlog,
            self.journal.stats.last_seq,
        )
        cursors = self.journal.cursors()
        for profs in self.profiles.values():
            for prof in profs:
                if isinstance(prof, Resumable):  # e.g. weighing counters (profiles/context.py)
                    prof.resume(cursors)
        if self.cfg.bridge is not None:  # store-and-forward to the platform (docs/bridge.md)
            from gateway.bridge.service import Bridge

            self.bridge = Bridge.for_gateway(self).start()
            # no event out before the bridge's subscription stands: on its first run (no broker
            # session yet), or after a broker restart that lost the session, it would miss them
            self.forwarder.gate = self.bridge.listening
        self.forwarder.start()
        if self.telemetry is not None:
            self.dcmd.bind(self._loop)
            self.telemetry.start()
        self._build_supervisors()
        for sup in self.supervisors:
            self._run_device(sup)
        self.started = self._reloadable = True
        tick = asyncio.create_task(self._tick(), name="profile-tick")
        try:
            await self._watch(stop)
        finally:
            async with self._reload_lock:  # a reload under way finishes first
                self._reloadable = False
            await self._shutdown([*self._device_tasks.values(), tick])
        return self.exit_code

    async def _tick(self) -> None:
        """Once a second, what time alone causes (e.g. a periodic CCP check not done)."""
        while True:
            await asyncio.sleep(1.0)
            now = datetime.now(self.tz)
            drafts: list[EventDraft] = []
            try:
                with self._staging():
                    for profs in self.profiles.values():
                        for prof in profs:
                            try:
                                drafts.extend(prof.on_tick(now))
                                if isinstance(prof, KpiSource) and (kpi := prof.kpi_message(now)):
                                    body = json.dumps(kpi, ensure_ascii=False).encode()
                                    self.forwarder.publish_control(
                                        self.topics.kpi(), body, retain=True
                                    )
                            except Exception:  # a profile bug must not stop the others' ticks
                                self.profile_failures += 1
                                log.exception("profile for device %s failed on tick", prof.device)
                    fut = self._hand_in(drafts)
                if fut is not None:
                    await asyncio.wrap_future(fut)
            except Exception:  # the tick must outlive a failed append (journal closing, …)
                log.exception("events of a tick were not journaled")

    async def _watch(self, stop: asyncio.Event) -> None:
        """Wait for stop; end early (exit status 1, for systemd to restart us) if the journal
        writer or the forwarder thread died: without them nothing is accepted or delivered."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
            for name, alive in (
                ("journal", self.journal.alive),
                ("forwarder", self.forwarder.alive),
                ("bridge", self.bridge.alive if self.bridge is not None else lambda: True),
                ("telemetry store", self._telemetry_store_alive),
            ):
                if not alive():
                    log.critical("%s thread is dead; stopping the gateway (exit status 1)", name)
                    self.exit_code = 1
                    return

    def _telemetry_store_alive(self) -> bool:
        t = self.telemetry
        return t is None or t.store.alive() or not self.started

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        log.info("shutting down")
        await self.records.close()  # before commands: they share the authoriser
        await self.commands.close()  # let a command being written finish
        for t in tasks:
            t.cancel()
        if tasks:  # bounded: a task that does not stop must not keep the process alive
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_DRAIN_SECS)
            for t in stuck:
                log.error("task %s did not stop within %g s; left behind", t.get_name(),
                          SHUTDOWN_DRAIN_SECS)  # fmt: skip
        # let alarm tasks already created finish journaling
        pending = [t for t in asyncio.all_tasks() if t.get_name().startswith("alarm-")]
        if pending:  # bounded: a journal that cannot write (disk full) must not hang shutdown
            _, late = await asyncio.wait(pending, timeout=SHUTDOWN_DRAIN_SECS)
            for t in late:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # a barrier: appends handed in before it (a cancelled reading's) commit first, so the
        # drain below sees them and they go out now, not at the next start
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.journal.append([])), 2.0)
        except Exception:  # journal closed, or not writable: the drain goes on regardless
            pass
        drained = await asyncio.to_thread(self.forwarder.drain, SHUTDOWN_DRAIN_SECS)
        if not drained:
            log.warning(
                "%d events not yet acknowledged by the broker; kept in the journal for next start",
                self.journal.stats.backlog,
            )
        if self.telemetry is not None:  # its own store and client: after the events' drain
            await asyncio.to_thread(self.telemetry.stop, 5.0)
        if self.bridge is not None:  # after the drain: it had the chance to receive it all
            await asyncio.to_thread(self.bridge.stop)
        await asyncio.to_thread(self.forwarder.stop)
        self.journal.close()
        log.info("stopped; journal holds %d undelivered events", self.journal.stats.backlog)


def _telemetry(
    cfg: ConfigBase, topics: Topics, broker_url: str | None, dcmd: CommandMapSink
) -> Telemetry | None:
    """Tag telemetry when the config has ``telemetry:``; its outputs: the UNS topics and
    Sparkplug B (``sparkplug:``)."""
    section = cfg.telemetry
    if section is None:
        return None
    outputs: list[TelemetryOutput] = []
    if section.uns:
        from gateway.telemetry.uns import UnsOutput

        client_id = f"{cfg.mqtt.client_id or f'saltgw-{cfg.gateway.id}'}-uns"
        outputs.append(
            UnsOutput(
                cfg.mqtt,
                topics,
                client_id,
                retained_interval_ms=section.retained_interval_ms,
                broker_url=broker_url,
            )
        )
    if cfg.sparkplug is not None:
        from gateway.telemetry.sparkplug import SparkplugOutput

        outputs.append(
            SparkplugOutput(
                cfg.sparkplug,
                cfg.mqtt,
                gateway_id=cfg.gateway.id,
                state_dir=Path(cfg.journal.path).parent,
                command_sink=dcmd,  # bound to the loop in Gateway.run
                broker_url=broker_url,
            )
        )
    return Telemetry(section, list(cfg.devices), Path(cfg.journal.path), outputs)


def _shared_store(cfg: ConfigBase) -> TraceDb | None:
    """The line's trace store, named by its traceability profiles (one file per line)."""
    stores = sorted(
        {str(s) for p in cfg.profiles if isinstance(s := getattr(p, "store", None), Path)}
    )
    if len(stores) > 1:
        raise ValueError(
            f"profiles: the traceability profiles of line {cfg.gateway.line} name "
            f"{len(stores)} trace stores ({', '.join(stores)}); they must all name the same "
            "file (its writes commit with the journal's events, docs/architecture.md)"
        )
    return open_trace_db(stores[0]) if stores else None


def _with_batch(d: EventDraft, batch: str) -> EventDraft:
    return EventDraft(d.type, d.ts, d.data, device=d.device, batch=batch, cursor=d.cursor)


def _records(gw: Gateway) -> RecordRouter:
    """Records from MES and LIMS, journaled as they are: with their own batch, never the line's
    running one (so not through :meth:`Gateway.accept`); authorised by the commands' issuers."""
    from gateway.records.journaled import JournaledRecords, records_path_for
    from gateway.records.router import RecordRouter

    async def append(drafts: list[EventDraft]) -> list[Event]:
        return await asyncio.wrap_future(gw.journal.append(drafts))

    return RecordRouter(
        gw.topics,
        gw.tz,
        lambda topic, body: gw.forwarder.publish_control(topic, body, retain=False),
        append,
        gw.commands.auth,
        JournaledRecords(records_path_for(Path(gw.cfg.journal.path))),
    )
