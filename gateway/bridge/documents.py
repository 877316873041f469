"""Build upload documents from the records not yet in one, into the outbox (``documents``).

Constraints:

- A document holds the oldest uploadable events not yet in a document, in ingest order, up to
  ``codes_per_document`` codes (an event is never split: one carrying more codes gets its own
  document). It is built when that many codes wait, or when the oldest waiting record is
  ``max_delay_secs`` old, or on demand (``force``).
- Each document has a unique number ``{enterprise}-{yyyymmdd}-{node}-{seq:06d}``; ``seq``
  counts per day and is persisted with the document (a number whose document was not committed
  was never seen outside, so it may be given again). Each document is checked against its
  schema before it enters the outbox; one that fails is kept as ``quarantined`` with the
  schema's message (a saltgw bug or data the schema cannot hold) and never uploaded —
  reconciliation then shows its batch incomplete. The schema is loaded when the builder is made:
  a bridge whose schema is missing does not start. Only ``bridge.epcis_check: off`` builds EPCIS
  documents unchecked, and each is stored with ``checked = 0`` (counted on ``/metrics``).
- Each document carries the trace store's chain head at the time it is built (rid, hash and
  algorithm: ``ChainHead`` in the platform profile, ``sg:chainHead`` after the EPCIS body), so
  the platform holds an anchor that a rewrite of the store cannot match (docs/security.md).
- Document rows (with their event ranges) and ``meta.built_rid`` are written in one
  transaction, a few documents at a time (one fsync for several): after a crash either both
  exist or neither (the records then go into a new document). No event row is rewritten.
- Several builders may share one store (bridges writing one PostgreSQL store,
  docs/scaling.md): a group is committed (under the store's write lock) only if
  ``meta.built_rid`` is still what it was built after; else another builder documented those
  events first, and the group is dropped (its numbers were never seen) and built again from
  the store's state. The day's sequence is read from the store at each build, so numbers stay
  unique across builders.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import IO, Protocol

from gateway.bridge.config import BridgeSection
from gateway.bridge.content import DocumentContent, DocumentHeader
from gateway.bridge.db import Db
from gateway.bridge.integrity import head
from gateway.bridge.schema import built_rid
from gateway.bridge.xmlcheck import check_document, load_schema
from gateway.chain import ALG_HMAC

__all__ = ["BuiltDocument", "DocumentBuilder", "Profile", "make_profile"]

log = logging.getLogger(__name__)


class Profile(Protocol):
    """A document format (the adapter seam for another platform's XML)."""

    name: str
    namespace: str

    def write(self, out: IO[bytes], header: DocumentHeader, content: DocumentContent) -> None: ...


def make_profile(cfg: BridgeSection) -> Profile:
    if cfg.profile == "epcis":
        from gateway.bridge.epcis import EpcisWriter

        return EpcisWriter()
    from gateway.bridge.platform import PlatformWriter

    return PlatformWriter(cfg)


GROUP_DOCS = 8
GROUP_BYTES = 8 * 2**20


@dataclass(frozen=True, slots=True)
class _Prepared:
    number: str
    day: str
    seq: int
    first: int
    last: int
    codes: int
    encoding: str
    body: bytes
    sha256: str
    error: str | None


@dataclass(frozen=True, slots=True)
class BuiltDocument:
    id: int
    number: str
    codes: int
    state: str  # pending | quarantined
    error: str | None


class DocumentBuilder:
    """Used by one thread (the bridge's builder); owns its own connection."""

    def __init__(
        self,
        db: Db,
        cfg: BridgeSection,
        *,
        enterprise: str,
        node: str,
        tz: tzinfo,
        profile: Profile | None = None,
        validate: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.cfg = cfg
        self.enterprise = enterprise
        self.node = node
        self.tz = tz
        self.profile = profile or make_profile(cfg)
        self.clock = clock  # wall clock: document numbers and dates, max_delay_secs
        # EPCIS documents are checked unless the config explicitly opts out (epcis_check: off);
        # a required schema that cannot be loaded stops the bridge here, at start
        self.checked = validate and not (cfg.profile == "epcis" and cfg.epcis_check == "off")
        self.schema = load_schema(self.profile.namespace, cfg.epcis_xsd) if self.checked else None
        self.unchecked = 0  # documents built without a schema check (counted on /metrics)
        self.raced = 0  # groups dropped because another builder of the store was first
        self._seq: tuple[str, int] | None = None  # last used (day, seq)

    def build_ready(self, *, force: bool = False, limit: int = 1000) -> list[BuiltDocument]:
        """Build every document that is due (all waiting records when ``force``), up to
        ``limit``. Documents are committed in groups (up to ``GROUP_DOCS`` documents or
        ``GROUP_BYTES`` of XML a transaction: one fsync for several), each group atomically."""
        out: list[BuiltDocument] = []
        group: list[_Prepared] = []
        self._seq = None  # another builder of the store may have numbered documents since
        after = base = built_rid(self.db)
        try:
            while len(out) + len(group) < limit:
                sel = self._select(force, after)
                if sel is None:
                    break
                group.append(self._prepare(*sel))
                after = sel[1]
                if len(group) >= GROUP_DOCS or sum(len(g.body) for g in group) >= GROUP_BYTES:
                    done = self._commit(group, base)
                    if done is None:  # raced: build again from what the store holds now
                        self._seq = None
                        after = base = built_rid(self.db)
                    else:
                        out += done
                        base = after
                    group = []
            if group:
                out += self._commit(group, base) or []
        except BaseException:
            self._seq = None  # numbers not committed were never seen: re-read from the store
            raise
        return out

    def build_one(self, *, force: bool = False) -> BuiltDocument | None:
        built = self.build_ready(force=force, limit=1)
        return built[0] if built else None

    def _select(self, force: bool, after: int) -> tuple[int, int, int] | None:
        """(first rid, last rid, codes) of the next document after event ``after``, or None
        when none is due."""
        chunk = self.cfg.codes_per_document
        cur = self.db.execute(
            "SELECT rid, weight, received FROM events WHERE up=1 AND rid > ? ORDER BY rid",
            (after,),
        )
        first = last = None
        total = 0
        oldest = 0.0
        for rid, weight, received in cur:
            if first is None:
                first, oldest = rid, received
            elif total + weight > chunk:
                break
            last = rid
            total += weight
            if total >= chunk:
                break
        cur.close()
        if first is None or last is None:
            return None
        due = force or total >= chunk or self.clock() - oldest >= self.cfg.max_delay_secs
        return (first, last, total) if due else None

    def _prepare(self, first: int, last: int, codes: int) -> _Prepared:
        """Write, check and encode one document (nothing stored yet)."""
        now = datetime.fromtimestamp(self.clock(), self.tz)
        day, seq = self._next_seq(now)
        self._seq = (day, seq)
        number = f"{self.enterprise}-{day}-{self.node}-{seq:06d}"
        rid, tip = head(self.db)  # committed: the ingest seals in its own transactions
        header = DocumentHeader(
            number, self.enterprise, now.isoformat(timespec="milliseconds"),
            (rid, tip.hex(), ALG_HMAC) if rid else None,
        )  # fmt: skip
        buf = io.BytesIO()
        self.profile.write(buf, header, DocumentContent(self.db, first, last, self.cfg))
        xml = buf.getvalue()
        error = self._check(xml)
        body, encoding = xml, "xml"
        if self.cfg.gzip_base64:
            body, encoding = base64.b64encode(gzip.compress(xml, compresslevel=6)), "gzip+base64"
        sha = hashlib.sha256(xml).hexdigest()
        return _Prepared(number, day, seq, first, last, codes, encoding, body, sha, error)

    def _commit(self, group: list[_Prepared], base: int) -> list[BuiltDocument] | None:
        """Store ``group`` (built over the events after ``base``); None when another builder
        of the store moved ``built_rid`` meanwhile (nothing stored)."""
        db = self.db
        out = []
        db.execute("BEGIN IMMEDIATE")
        try:
            now_built = built_rid(db)
            if now_built != base:
                db.execute("ROLLBACK")
                self._seq = None
                self.raced += 1
                log.info("documents after event %d were built by another bridge (up to %d); "
                         "building again", base, now_built)  # fmt: skip
                return None
            for g in group:
                state = "pending" if g.error is None else "quarantined"
                cur = db.execute(
                    "INSERT INTO documents(number, profile, encoding, created, first_rid, "
                    "last_rid, codes, sha256, body, state, last_error, checked) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                    (
                        g.number, self.profile.name, g.encoding, self.clock(), g.first, g.last,
                        g.codes, g.sha256, g.body, state, g.error, int(self.checked),
                    ),
                )  # fmt: skip
                if g.error is not None:
                    db.execute(
                        "INSERT INTO attempts(number, at, outcome, detail) VALUES (?,?,?,?)",
                        (g.number, self.clock(), "invalid", g.error),
                    )
                out.append(BuiltDocument(int(cur.fetchone()[0]), g.number, g.codes, state, g.error))
            last = group[-1]
            db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [("built_rid", str(last.last)), (f"docseq:{last.day}", str(last.seq))],
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if not self.checked:
            self.unchecked += len(out)
        for d in out:
            if d.error is not None:
                log.error("document %s fails its schema, quarantined: %s", d.number, d.error)
        return out

    def _check(self, xml: bytes) -> str | None:
        """The schema's complaint about ``xml`` (None: valid, or not checked by choice)."""
        if self.schema is None:
            return None
        result = check_document(xml, self.cfg.epcis_xsd, schema=self.schema)
        if result.valid:
            return None
        return "; ".join(result.errors[:5])

    def _next_seq(self, now: datetime) -> tuple[str, int]:
        """(yyyymmdd, seq) of the next document number; the sequence is persisted per day in
        the transaction that stores the document. Within one build the last committed value (or
        the one just prepared) is the truth; each build reads it again, and a commit checks
        that no other builder committed in between."""
        day = now.strftime("%Y%m%d")
        if self._seq is None or self._seq[0] != day:
            row = self.db.execute(
                "SELECT value FROM meta WHERE key=?", (f"docseq:{day}",)
            ).fetchone()
            self._seq = (day, int(row[0]) if row else 0)
        return day, self._seq[1] + 1
