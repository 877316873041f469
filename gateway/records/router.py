"""Records from MES and LIMS on ``…/{line}/record/{kind}``, answered on
``…/record/{kind}/response`` (docs/records.md).

A message is a JSON object: ``id`` (the message's, 1-128 characters), ``issuer``, ``ts``,
``sig`` (signed like a command: gateway/command_auth.py, the receiver's ``device`` being
``record/{kind}``), optionally ``source``, and the record's fields (gateway/records/models.py).
The gateway checks it, checks the sender's grant for the kind (``records:`` in a grant of the
``commands:`` issuers), journals it as a ``record.{kind}`` event (envelope ``batch``: the
record's batch, never the line's running one; ``device`` null) and answers ``accepted`` with
the event's ``seq`` once the journal committed it — or ``accepted`` with ``duplicate: true``
when a record of that kind and ``record_id`` was journaled before (:mod:`.journaled`).
Anything else is answered ``rejected`` with the reason naming the field; an unauthorised
sender learns only ``not authorised`` (the reason is logged).

Threading: :meth:`RecordRouter.on_message` runs on the MQTT forwarder thread and hands the
message to the gateway's loop, where records are handled one at a time (they are few; one at
a time makes the duplicate check exact). At most :data:`MAX_WAITING` wait; more are answered
``busy`` at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo
from typing import Any

from gateway.command_auth import Authoriser, NotAuthorised
from gateway.events import Event, EventDraft
from gateway.records.journaled import JournaledRecords
from gateway.records.models import Record, event_type
from gateway.records.parse import RecordRefused, parse_record, peek_id
from gateway.topics import Topics

__all__ = ["MAX_WAITING", "RecordRouter", "record_draft"]

log = logging.getLogger(__name__)

MAX_WAITING = 256
NOT_AUTHORISED = "not authorised"


def record_draft(
    kind: str, record: Record, record_id: str, issuer: str | None, source: str, now: datetime
) -> EventDraft:
    """The ``record.{kind}`` event of a checked record."""
    data: dict[str, Any] = record.model_dump(mode="json")
    data["record_id"] = record_id
    data["issuer"] = issuer
    data["source"] = source
    return EventDraft(event_type(kind), now, data, device=None, batch=record.batch_of())


class RecordRouter:
    def __init__(
        self,
        topics: Topics,
        tz: tzinfo,
        publish: Callable[[str, bytes], None],
        append: Callable[[list[EventDraft]], Awaitable[list[Event]]],
        auth: Authoriser,
        journaled: JournaledRecords,
        clock: Callable[[], float] = time.time,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.topics = topics
        self.tz = tz
        self.publish = publish
        self.append = append
        self.auth = auth
        self.journaled = journaled
        self.clock = clock
        self.max_waiting = max_waiting
        self.accepted = 0
        self.duplicates = 0
        self.rejected = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """From the MQTT forwarder thread: handle the record on the gateway's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.warning("record on %r dropped: the gateway is not running", topic)
            return
        loop.call_soon_threadsafe(self._spawn, topic, payload, retained)

    def _spawn(self, topic: str, payload: bytes, retained: bool) -> None:
        if not payload:
            return
        if len(self._tasks) >= self.max_waiting:
            kind = topic.rsplit("/", 1)[-1]
            self._respond(kind, peek_id(payload), "rejected", f"busy: {len(self._tasks)} "
                          "records waiting", None)  # fmt: skip
            return
        task = asyncio.get_running_loop().create_task(
            self.handle(topic, payload, retained), name="record"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        for task in list(self._tasks):
            task.cancel()
        self.journaled.close()

    async def handle(self, topic: str, payload: bytes, retained: bool = False) -> dict[str, Any]:
        """Check, authorise and journal one record; publish and return the response."""
        kind = topic.rsplit("/", 1)[-1]
        if not payload:
            return {}
        msg_id = peek_id(payload)
        try:
            obj, record = parse_record(kind, payload)
            try:
                issuer = self.auth.check_record(kind, obj)
            except NotAuthorised as exc:
                log.warning("record %s (id %r) not authorised: %s", kind, msg_id, exc)
                raise RecordRefused(NOT_AUTHORISED) from None
            except Exception as exc:  # e.g. the used-ids store closed at shutdown
                log.error("record %s (id %r) refused: authorisation failed: %r", kind, msg_id, exc)
                raise RecordRefused(NOT_AUTHORISED) from None
            if retained:
                raise RecordRefused(
                    "retained record not journaled (publish records with retain=false)"
                )
            record_id = record.record_id or str(obj["id"])
            source = obj.get("source") or "mqtt"
            async with self._lock:
                seq = self.journaled.seq_of(kind, record_id)
                if seq is not None:
                    self.duplicates += 1
                    return self._respond(kind, msg_id, "accepted", None, record_id, seq, True)
                now = datetime.fromtimestamp(self.clock(), self.tz)
                draft = record_draft(kind, record, record_id, issuer, str(source), now)
                try:
                    (event,) = await self.append([draft])
                except Exception as exc:  # the journal closed or failed: the sender retries
                    log.error("record %s %r not journaled: %r", kind, record_id, exc)
                    raise RecordRefused(f"not journaled: {exc}") from None
                self.journaled.add(kind, record_id, event.seq, self.clock())
        except RecordRefused as exc:
            return self._respond(kind, msg_id, "rejected", str(exc), None)
        return self._respond(kind, msg_id, "accepted", None, record_id, event.seq, False)

    def _respond(
        self,
        kind: str,
        msg_id: str | None,
        status: str,
        reason: str | None,
        record_id: str | None,
        seq: int | None = None,
        duplicate: bool = False,
    ) -> dict[str, Any]:
        response = {
            "id": msg_id,
            "status": status,
            "reason": reason,
            "record": kind,
            "record_id": record_id,
            "seq": seq,
            "duplicate": duplicate,
            "ts": datetime.fromtimestamp(self.clock(), self.tz).isoformat(timespec="milliseconds"),
        }
        if status == "accepted":
            self.accepted += 1
            log.info("record %s %r (id %r) %s", kind, record_id, msg_id,
                     "already journaled" if duplicate else f"journaled as seq {seq}")  # fmt: skip
        else:
            self.rejected += 1
            log.warning("record %s (id %r) rejected: %s", kind[:64], msg_id, reason)
        try:
            body = json.dumps(response, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            body = json.dumps(response).encode()
        self.publish(self.topics.record_response(kind[:64]), body)
        return response
