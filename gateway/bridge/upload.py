"""The outbox's delivery loop: documents go out in number order, each retried with backoff
(tenacity) until the platform acknowledged it or it is quarantined.

Constraints:

- Nothing is deleted: a document keeps its body, every attempt is recorded in ``attempts`` with
  its outcome and detail, and the receipt is recorded when the platform acknowledges it.
  (Acknowledged documents are removed only by the retention job, QB/T 5279 11.1.)
- Document states: ``pending`` → ``acked`` (receipt), or → ``sent`` (outbox directory waiting
  for its receipt file) → ``acked``, or → ``quarantined`` (rejected, or ``max_attempts`` failed
  attempts; the reason in ``last_error``). ``Unavailable`` attempts are not counted.
- A repeat delivery after a lost reply is answered ``duplicate`` by the platform (it knows the
  document number) and counts as the acknowledgement: exactly once as the platform sees it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from gateway.bridge.config import UploadRetrySection
from gateway.bridge.db import Db
from gateway.bridge.lease import Lease
from gateway.bridge.transport import (
    Failed,
    Outgoing,
    Receipt,
    Rejected,
    Transport,
    Unavailable,
)

__all__ = ["CannotResend", "UploadStats", "Uploader", "resend"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class UploadStats:
    acked: int = 0
    sent: int = 0  # written, waiting for a receipt
    failed: int = 0  # counted failed attempts
    unavailable: int = 0
    quarantined: int = 0


class Uploader:
    """Runs on one thread with its own connection."""

    def __init__(
        self,
        db: Db,
        transport: Transport,
        retry: UploadRetrySection,
        stop: threading.Event,
        *,
        on_ack: Callable[[str, str], None] | None = None,
        lease: Lease | None = None,
    ) -> None:
        """``lease``: with several bridges on one store, only the holder uploads
        (gateway/bridge/lease.py); None: this uploader is the store's only one."""
        self.db = db
        self.lease = lease
        self.uploading = lease is None  # holds the lease (said once per change in the log)
        self.transport = transport
        self.retry = retry
        self.stop = stop
        self.on_ack = on_ack
        self.stats = UploadStats()

    def run_once(self) -> int:
        """Deliver every pending document, then collect receipts; returns documents acked.
        Nothing while another bridge holds the store's uploader lease."""
        if not self._lease_held():
            return 0
        done = 0
        while not self.stop.is_set():
            row = self.db.execute(
                "SELECT id, number, body, encoding, sha256, attempts FROM documents "
                "WHERE state='pending' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                break
            doc_id, number, body, encoding, sha, attempts = row
            before = self.stats.acked
            self.deliver(doc_id, Outgoing(number, bytes(body), encoding, sha), attempts)
            done += self.stats.acked - before
            if self._state(doc_id) == "pending":
                break  # stopping
        return done + self.poll_receipts()

    def _lease_held(self) -> bool:
        if self.lease is None:
            return True
        held = self.lease.held()
        if held != self.uploading:
            self.uploading = held
            if held:
                log.warning("bridge: this bridge now uploads the store's documents (uploader "
                            "lease taken)")  # fmt: skip
            else:
                log.info("bridge: another bridge uploads the store's documents; standing by")
        return held

    def _sleep(self, secs: float) -> None:
        self.stop.wait(secs)  # a stop request ends the backoff at once

    def _state(self, doc_id: int) -> str:
        return str(
            self.db.execute("SELECT state FROM documents WHERE id=?", (doc_id,)).fetchone()[0]
        )

    def deliver(self, doc_id: int, doc: Outgoing, attempts: int) -> None:
        counted = attempts

        def give_up(rs: RetryCallState) -> bool:
            return self.stop.is_set() or counted >= self.retry.max_attempts

        retrying = Retrying(
            retry=retry_if_exception_type((Unavailable, Failed)),
            stop=give_up,
            wait=wait_exponential_jitter(
                multiplier=self.retry.backoff_min_secs,
                max=self.retry.backoff_max_secs,
                jitter=self.retry.backoff_min_secs,
            ),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        receipt = self.transport.send(doc)
                    except Failed as exc:
                        counted += 1
                        self._record(doc, "failed", str(exc), attempts=counted)
                        self.stats.failed += 1
                        raise
                    except Unavailable as exc:
                        self._record(doc, "unavailable", str(exc))
                        self.stats.unavailable += 1
                        raise
        except Rejected as exc:
            self._record(doc, "rejected", str(exc))
            self._quarantine(doc_id, doc.number, str(exc))
            return
        except (Failed, Unavailable) as exc:
            if counted >= self.retry.max_attempts:
                reason = f"{counted} failed attempts; last: {exc}"
                self._quarantine(doc_id, doc.number, reason)
            return  # else: stopping; the document stays pending
        if receipt is None:
            self._set(doc_id, "sent")
            self._record(doc, "sent", None)
            self.stats.sent += 1
        else:
            self._acked(doc_id, doc.number, receipt)

    def poll_receipts(self) -> int:
        done = 0
        rows = self.db.execute(
            "SELECT id, number FROM documents WHERE state='sent' ORDER BY id"
        ).fetchall()
        for doc_id, number in rows:
            try:
                receipt = self.transport.poll(number)
            except Rejected as exc:
                self._record_n(number, "rejected", str(exc))
                self._quarantine(doc_id, number, str(exc))
                continue
            except Failed as exc:  # a garbage receipt: deliver again
                self._record_n(number, "failed", str(exc))
                self.db.execute(
                    "UPDATE documents SET state='pending', attempts=attempts+1, last_error=? "
                    "WHERE id=?",
                    (str(exc), doc_id),
                )
                continue
            except Unavailable as exc:
                log.warning("receipt of document %s: %s", number, exc)
                continue
            if receipt is not None:
                self._acked(doc_id, number, receipt)
                done += 1
        return done

    # -- bookkeeping -----------------------------------------------------------------------------
    def _record(
        self, doc: Outgoing, outcome: str, detail: str | None, *, attempts: int | None = None
    ) -> None:
        self._record_n(doc.number, outcome, detail)
        if attempts is not None:
            self.db.execute(
                "UPDATE documents SET attempts=?, last_error=? WHERE number=?",
                (attempts, detail, doc.number),
            )
        elif detail is not None:
            self.db.execute(
                "UPDATE documents SET last_error=? WHERE number=?", (detail, doc.number)
            )
        if outcome in ("failed", "unavailable"):
            log.warning("upload of document %s: %s (retrying)", doc.number, detail)

    def _record_n(self, number: str, outcome: str, detail: str | None) -> None:
        self.db.execute(
            "INSERT INTO attempts(number, at, outcome, detail) VALUES (?,?,?,?)",
            (number, time.time(), outcome, detail),
        )

    def _set(self, doc_id: int, state: str) -> None:
        self.db.execute("UPDATE documents SET state=? WHERE id=?", (state, doc_id))

    def _acked(self, doc_id: int, number: str, receipt: Receipt) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "UPDATE documents SET state='acked', receipt=?, acked=?, last_error=NULL WHERE id=?",
            (receipt.receipt, time.time(), doc_id),
        )
        self._record_n(number, receipt.status, receipt.receipt)
        self.db.execute("COMMIT")
        self.stats.acked += 1
        log.info(
            "document %s acknowledged (%s, receipt %r)", number, receipt.status, receipt.receipt
        )
        if self.on_ack is not None:
            self.on_ack(number, receipt.receipt)

    def _quarantine(self, doc_id: int, number: str, reason: str) -> None:
        self.db.execute(
            "UPDATE documents SET state='quarantined', last_error=? WHERE id=?",
            (reason, doc_id),
        )
        self.stats.quarantined += 1
        log.error("document %s quarantined: %s", number, reason)


class CannotResend(Exception):
    """The document cannot be queued again; the message says why."""


def resend(db: Db, number: str, by: str) -> None:
    """Queue quarantined document ``number`` again (``saltgw trace --resend``), e.g. after the
    platform fixed what made it reject the document: its attempts start again from zero and the
    request is recorded in ``attempts``. A document that failed its schema check when built is
    refused: the platform would reject the same bytes again."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(
            "SELECT id, state, last_error, "
            "(SELECT COUNT(*) FROM attempts a WHERE a.number = d.number) "
            "FROM documents d WHERE number=?",
            (number,),
        ).fetchone()
        if row is None:
            raise CannotResend(f"no document {number!r} in the outbox")
        doc_id, state, error, tried = row
        if state != "quarantined":
            raise CannotResend(f"document {number} is {state}, not quarantined")
        if not tried:
            raise CannotResend(
                f"document {number} failed its schema check when it was built ({error}); "
                "the platform would reject it again"
            )
        db.execute(
            "UPDATE documents SET state='pending', attempts=0, next_try=0 WHERE id=?", (doc_id,)
        )
        db.execute(
            "INSERT INTO attempts(number, at, outcome, detail) VALUES (?,?,?,?)",
            (number, time.time(), "requeued", f"by {by}; was quarantined: {error}"),
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    log.warning("document %s queued again by %s (was quarantined: %s)", number, by, error)
