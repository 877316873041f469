"""The OPC UA driver: one asyncua client session to one server, read through a subscription
(or by polling), with writes for the tags the tag map marks writable.

Recovery is the supervisor's job (``gateway/supervisor.py``); this driver only has to notice
trouble quickly and say what it is. asyncua's own reconnect loop and its stale-subscription
watchdog are off (``auto_reconnect`` False), so a lost link surfaces here::

    server restart / link dropped (socket closed)          -> DeviceOffline at the next read()
    dead link that stays open (no answer to the probe)      -> DeviceOffline within ~2 watchdog
                                                               intervals
    subscription stalled: no data and no keep-alive         -> DeviceOffline after
                                                               stall_timeout_ms
    subscription ended by the server (StatusChange)         -> DeviceOffline
    a resolved node vanished (BadNodeIdUnknown)             -> DeviceFault; reconnecting resolves
                                                               every node again
    tag not resolvable / wrong type / bad status / NaN      -> Reading.errors[tag]

Every ``connect()`` starts from scratch: a new session, the namespace array read again, nodes
resolved again (``resolve.py``), a new subscription. So a PLC that restarted, renumbered its
namespaces or lost our session is followed without restarting the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import Subscription

from drivers.base import (
    DeviceError,
    DeviceFault,
    DeviceOffline,
    MethodCall,
    MethodResult,
    Reading,
    TagValue,
    WriteRejected,
)
from drivers.opcua import logfilter
from drivers.opcua.config import NoSecurity, OpcUaDeviceConfig
from drivers.opcua.errors import NODE_GONE, device_error
from drivers.opcua.methods import call_method
from drivers.opcua.resolve import ResolvedNode, resolve, status_text
from drivers.opcua.security import apply_identity, apply_security, certificate_uri
from drivers.opcua.values import NUMERIC_TYPES, to_tag_value, to_variant
from drivers.ticker import PollTicker

__all__ = ["OpcUaDriver"]

log = logging.getLogger(__name__)

logfilter.install()  # a lost link is the supervisor's one line, not asyncua's traceback

CHECK_SECS = 0.25  # how often a waiting read() checks the link and the stall timer
SESSION_TIMEOUT_MS = 60_000  # the server drops a session we abandoned after this long


@dataclass(frozen=True, slots=True)
class _Change:
    handle: int
    value: ua.DataValue


@dataclass(frozen=True, slots=True)
class _Ended:
    status: ua.StatusCode


_Note = _Change | _Ended


class _Inbox:
    """The subscription's handler: notifications go into a queue that read() drains."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Note] = asyncio.Queue()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        item = data.monitored_item
        self.queue.put_nowait(_Change(item.ClientHandle, item.Value))

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        self.queue.put_nowait(_Ended(status.Status))

    def get_nowait(self) -> _Note | None:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None


class OpcUaDriver:
    """A :class:`drivers.base.WritableDriver` and :class:`drivers.base.MethodDriver` for one
    OPC UA server."""

    # online once the first values arrived (a subscription's initial notification, or a poll),
    # not on connect alone: a server can accept a session and refuse every node
    online_after_first_read = True

    def __init__(self, config: OpcUaDeviceConfig) -> None:
        self.config = config
        self.where = f"opc.tcp server {config.endpoint}"
        self._timeout = config.timeout_ms / 1000
        self._ticker = PollTicker(config.poll_interval_ms / 1000)
        self._client: Client | None = None
        self._sub: Subscription | None = None
        self._inbox: _Inbox | None = None
        self._subscribed_at = 0.0
        self._nodes: dict[str, ResolvedNode] = {}
        self._handles: dict[int, str] = {}
        self._unresolved: dict[str, str] = {}  # tag -> why it has no node on this connection
        self._tag_errors: dict[str, str] = {}  # tag -> why its current value is unusable
        self._last: dict[str, TagValue] = {}
        self._carry: deque[_Note] = deque()

    def __repr__(self) -> str:
        return f"OpcUaDriver({self.config.id!r}, {self.config.endpoint}, {self.config.mode})"

    @property
    def unresolved(self) -> dict[str, str]:
        """Tags without a node on this connection, and why."""
        return dict(self._unresolved)

    # -- connect / close -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Open a session, resolve every tag's node and (subscribe mode) subscribe."""
        await self.close()
        cfg = self.config
        client = Client(
            cfg.endpoint, timeout=self._timeout, watchdog_intervall=cfg.watchdog_interval_ms / 1000
        )
        client.name = client.description = f"saltgw {cfg.id}"
        client.session_timeout = SESSION_TIMEOUT_MS
        # asyncua's own stale-subscription watchdog would re-create a silent subscription in
        # place (and reset its liveness clock); the stall timer here resets the whole link.
        client._stale_check_margin = math.inf
        cert = None if isinstance(cfg.security, NoSecurity) else str(cfg.security.certificate)
        try:
            async with asyncio.timeout(cfg.connect_timeout_ms / 1000):
                await self._open(client)
        except BaseException as exc:  # cancelled too: never leave the client's tasks running
            self._client = self._sub = self._inbox = None
            await self._abandon(client)
            if isinstance(exc, TimeoutError):
                raise DeviceOffline(
                    f"connecting to {self.where} took longer than {cfg.connect_timeout_ms:g} ms"
                ) from exc
            if isinstance(exc, Exception):
                raise device_error(exc, f"connecting to {self.where}", client_cert=cert) from exc
            raise
        self._client = client
        self._ticker.reset()
        for why in self._unresolved.values():
            log.warning("device %s: %s", cfg.id, why)
        log.info(
            "device %s: connected to %s (%s, %d of %d tags resolved)",
            cfg.id,
            cfg.endpoint,
            cfg.mode,
            len(self._nodes),
            len(cfg.tags),
        )

    async def _open(self, client: Client) -> None:
        cfg = self.config
        client.application_uri = self._application_uri()
        if not isinstance(cfg.security, NoSecurity):
            await apply_security(client, cfg.security, self.where, self._timeout)
        if cfg.identity is not None:
            apply_identity(client, cfg.identity)
        await client.connect(auto_reconnect=False)
        found = await resolve(client, cfg)
        self._nodes, self._unresolved = found.nodes, found.errors
        if cfg.mode == "subscribe":
            await self._subscribe(client)

    def _application_uri(self) -> str:
        cfg = self.config
        if cfg.application_uri is not None:
            return cfg.application_uri
        if not isinstance(cfg.security, NoSecurity):
            uri = certificate_uri(cfg.security.certificate)
            if uri:
                return uri
        return f"urn:saltgw:{cfg.id}"

    async def _subscribe(self, client: Client) -> None:
        cfg = self.config
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=cfg.publishing_interval_ms,
            RequestedLifetimeCount=cfg.keepalive_count * 3,
            RequestedMaxKeepAliveCount=cfg.keepalive_count,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        inbox = _Inbox()
        sub = await client.create_subscription(params, inbox)
        requests, handles = [], {}
        for handle, (name, node) in enumerate(self._nodes.items(), start=1):
            requests.append(self._monitor_request(handle, name, node))
            handles[handle] = name
        results = await sub.create_monitored_items(requests)
        for handle, result in zip(list(handles), results, strict=True):
            if isinstance(result, ua.StatusCode):
                name = handles.pop(handle)
                node = self._nodes.pop(name)
                self._unresolved[name] = (
                    f"{node.where}: the server refused to monitor it: {status_text(result)}"
                )
        if not handles:
            raise DeviceFault("no tag could be monitored: " + "; ".join(self._unresolved.values()))
        self._sub, self._inbox, self._handles = sub, inbox, handles
        self._subscribed_at = time.monotonic()

    def _monitor_request(
        self, handle: int, name: str, node: ResolvedNode
    ) -> ua.MonitoredItemCreateRequest:
        cfg = self.config
        tag = cfg.tags[name]
        sampling = tag.sampling_interval_ms
        params = ua.MonitoringParameters(
            ClientHandle=handle,
            SamplingInterval=cfg.sampling_interval_ms if sampling is None else sampling,
            QueueSize=cfg.queue_size,
            DiscardOldest=True,
        )
        deadband = tag.deadband or (cfg.deadband if node.vtype in NUMERIC_TYPES else None)
        if deadband is not None:
            params.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=(
                    ua.DeadbandType.Absolute
                    if deadband.type == "absolute"
                    else ua.DeadbandType.Percent
                ),
                DeadbandValue=deadband.value,
            )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=node.node_id, AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=params,
        )

    async def close(self) -> None:
        """End the session (if the link still works) and drop the connection. Never raises."""
        client, self._client = self._client, None
        self._sub = self._inbox = None
        self._handles = {}
        self._carry.clear()
        self._tag_errors.clear()
        self._last.clear()
        if client is not None:
            await self._abandon(client)

    async def _abandon(self, client: Client) -> None:
        try:
            if client.state is UaClientState.CONNECTED:
                await asyncio.wait_for(client.disconnect(), 2.0)
                return
            # the link is already dead: stop the client's tasks without asking the server
            client.uaclient.request_disconnect()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close_session(), 1.0)
            client.disconnect_socket()
        except Exception as exc:  # close must never raise
            log.debug("device %s: closing the OPC UA client: %r", self.config.id, exc)

    # -- reading -------------------------------------------------------------------------------
    async def read(self) -> Reading:
        """Subscribe mode: wait for changes and return what arrived together; poll mode: read
        every tag at the next tick."""
        if self.config.mode == "poll":
            return await self._read_poll()
        return await self._read_changes()

    def _require(self) -> Client:
        client = self._client
        if client is None:
            raise DeviceOffline(f"not connected to {self.where}")
        if client.state is not UaClientState.CONNECTED:
            raise DeviceOffline(
                f"connection to {self.where} lost (closed, or no answer to the "
                f"{self.config.watchdog_interval_ms:g} ms probe)"
            )
        return client

    def _check_subscription(self) -> None:
        self._require()
        sub = self._sub
        if sub is None:
            raise DeviceOffline(f"no subscription on {self.where}")
        last = max(sub.last_publish_at or 0.0, self._subscribed_at)
        silent = time.monotonic() - last
        limit = self.config.stall_timeout_secs
        if silent > limit:
            raise DeviceOffline(
                f"subscription on {self.where} stalled: no data and no keep-alive for "
                f"{silent:.1f} s (limit {limit:g} s)"
            )

    async def _next_note(self) -> _Note:
        while True:
            if self._carry:
                return self._carry.popleft()
            self._check_subscription()
            inbox = self._inbox
            assert inbox is not None
            try:
                return await asyncio.wait_for(inbox.queue.get(), CHECK_SECS)
            except TimeoutError:
                continue

    async def _read_changes(self) -> Reading:
        note: _Note | None = await self._next_note()
        values: dict[str, TagValue] = {}
        while note is not None:
            if isinstance(note, _Ended):
                if values:  # hand on what came before; the next read() reports the end
                    self._carry.appendleft(note)
                    break
                raise DeviceOffline(
                    f"subscription on {self.where} ended with {note.status.name}: the server "
                    "shut down or the link was lost"
                )
            name = self._handles.get(note.handle)
            if name is not None:
                if name in values:  # a second change of one tag: keep it for the next Reading
                    self._carry.appendleft(note)
                    break
                self._take(name, note.value, values)
            note = self._carry.popleft() if self._carry else self._inbox_next()
        return self._reading(values)

    def _inbox_next(self) -> _Note | None:
        return self._inbox.get_nowait() if self._inbox is not None else None

    async def _read_poll(self) -> Reading:
        client = self._require()
        await self._ticker.wait()
        nodes = list(self._nodes.values())
        params = ua.ReadParameters()
        for node in nodes:
            params.NodesToRead.append(
                ua.ReadValueId(NodeId=node.node_id, AttributeId=ua.AttributeIds.Value)
            )
        try:
            results = await asyncio.wait_for(client.uaclient.read(params), self._timeout + 1.0)
        except Exception as exc:
            raise device_error(exc, f"reading {len(nodes)} tags from {self.where}") from exc
        values: dict[str, TagValue] = {}
        for node, dv in zip(nodes, results, strict=True):
            self._take(node.tag, dv, values)
        return self._reading(values)

    def _take(self, name: str, dv: ua.DataValue, values: dict[str, TagValue]) -> None:
        """Put one tag's DataValue into ``values`` or into the tag errors."""
        status = dv.StatusCode or ua.StatusCode()
        node = self._nodes[name]
        if status.value in NODE_GONE:
            raise DeviceFault(
                f"{node.where}: {status_text(status)}: the server's address space changed; "
                "resolving the nodes again"
            )
        if not status.is_good():
            self._tag_errors[name] = f"status {status_text(status)}"
            self._last.pop(name, None)
            return
        try:
            value = to_tag_value(dv.Value.Value if dv.Value is not None else None)
        except ValueError as exc:
            self._tag_errors[name] = str(exc)
            self._last.pop(name, None)
            return
        self._tag_errors.pop(name, None)
        values[name] = value

    def _reading(self, changed: dict[str, TagValue]) -> Reading:
        self._last.update(changed)
        values = dict(self._last) if self.config.report == "all" else changed
        errors = {**self._unresolved, **self._tag_errors}
        return Reading(self.config.id, datetime.now(UTC), values, errors)

    # -- writing -------------------------------------------------------------------------------
    async def write(self, tag: str, value: TagValue) -> None:
        """Write ``value`` to a writable tag, converted to the node's type."""
        cfg = self.config
        spec = cfg.tags.get(tag)
        if spec is None:
            raise WriteRejected(
                f"device {cfg.id!r} has no tag {tag!r} (tags: {', '.join(sorted(cfg.tags))})"
            )
        if not spec.writable:
            raise WriteRejected(
                f"tag {tag!r} of device {cfg.id!r} is not writable (its tag map entry does not "
                "say writable: true)"
            )
        client = self._require()
        node = self._nodes.get(tag)
        if node is None:
            raise DeviceFault(self._unresolved.get(tag, f"tag {tag!r} has no node"))
        if node.vtype is None:
            raise WriteRejected(f"{node.where}: the node's type is unknown (it holds no value)")
        variant = to_variant(value, node.vtype, node.where)
        try:
            results = await asyncio.wait_for(
                client.uaclient.write_attributes(
                    [node.node_id], [ua.DataValue(variant)], ua.AttributeIds.Value
                ),
                self._timeout + 1.0,
            )
        except DeviceError:
            raise
        except Exception as exc:
            raise device_error(exc, f"writing {node.where} on {self.where}") from exc
        status = results[0]
        if not status.is_good():
            raise DeviceFault(
                f"{self.where} refused writing {value!r} to {node.where}: {status_text(status)}"
            )
        log.info("device %s: wrote %r to %s", cfg.id, value, node.where)

    # -- methods -------------------------------------------------------------------------------
    async def call_method(self, call: MethodCall) -> MethodResult:
        """Call a method of the server (``methods.py``): its status and outputs, good or bad."""
        return await call_method(self._require(), self.config, call, self.where)
