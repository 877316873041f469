"""``saltgw verify``: walk the hash chains of the journal and the trace store and report the
first broken link (QB/T 5279-2018 11.4, records protected against tampering; the chains are
described in :mod:`gateway.chain`).

What is checked, per store:

- every linked record still matches its link (``chain == SHA-256(prev || body)``): a record
  changed after it was written breaks here;
- every record's ``prev`` is its predecessor's ``chain``: a record removed, inserted or moved
  breaks here. The journal deletes delivered rows, so only neighbours present on disk are
  checked from the oldest row left (a hole between undelivered rows is a break, since rows
  leave only from the oldest end); the trace store keeps
  the links of purged records (``pruned``), so its chain is checked end to end;
- the newest record matches the stored head: removing or replacing the newest records breaks
  here;
- trace store only: each outbox document's body still matches its recorded SHA-256;
- the trace store's access log (who queried what, gateway/bridge/access.py) is a chain of its
  own, checked the same way and reported on its own line.

Exit status: 0 intact, 1 a broken link, 2 a usage error (no such file).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.chain import GENESIS, journal_body, link

__all__ = [
    "Broken",
    "Report",
    "add_command",
    "verify_access_log",
    "verify_journal",
    "verify_store",
]


@dataclass(frozen=True, slots=True)
class Broken:
    at: int  # seq (journal) or rid (trace store) of the first record that fails
    reason: str


@dataclass(slots=True)
class Report:
    store: str  # "journal" | "trace store"
    path: Path
    checked: int = 0  # records whose link was verified
    unchained: int = 0  # records written before the chain existed (nothing to verify)
    notes: list[str] = field(default_factory=list)
    broken: Broken | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def line(self) -> str:
        where = f"{self.store} {self.path}"
        extra = f", {self.unchained} written before the chain (unchecked)" if self.unchained else ""
        if self.broken is None:
            return f"{where}: intact ({self.checked} records checked{extra})"
        unit = {"journal": "seq", "access log": "row id"}.get(self.store, "record rid")
        return (
            f"{where}: BROKEN at {unit} {self.broken.at}: {self.broken.reason} "
            f"({self.checked} records before it intact{extra})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "path": str(self.path),
            "ok": self.ok,
            "checked": self.checked,
            "unchained": self.unchained,
            "broken_at": self.broken.at if self.broken else None,
            "reason": self.broken.reason if self.broken else None,
            "notes": self.notes,
        }


@dataclass(frozen=True, slots=True)
class _Rec:
    key: int
    prev: bytes | None
    chain: bytes | None  # None: written before the chain existed
    body: bytes | None  # None: a purged record (only its links are kept)


def _readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(str(path))
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def _blob(v: bytes | None) -> bytes | None:
    return None if v is None else bytes(v)


def _walk(
    rep: Report, recs: Iterable[_Rec], head: tuple[int, bytes] | None, *, contiguous: bool
) -> None:
    """The chain rules over records in key order. ``contiguous``: keys are consecutive
    integers when nothing is missing (journal seqs); otherwise every record is present
    (trace store rids with purged links) and each links to the one before."""
    expected: bytes | None = None if contiguous else GENESIS
    last: _Rec | None = None
    for r in recs:
        if r.chain is None:
            if last is not None and last.chain is not None:
                rep.broken = Broken(r.key, "a record without a link after the chain began")
                return
            rep.unchained += 1
            last = r
            continue
        if contiguous and last is not None and last.key != r.key - 1:
            # the broker acknowledges in publish order (MQTT 3.1.1 4.6, 5.0 4.6), so delivered
            # rows leave from the oldest end and drop_oldest too: a hole was cut by hand
            rep.broken = Broken(
                last.key + 1,
                f"seqs {last.key + 1}..{r.key - 1} were removed between "
                "undelivered rows (rows leave only from the oldest end)",
            )
            return
        if contiguous and last is None and r.key == 1:
            expected = GENESIS
        if r.body is not None and (r.prev is None or link(r.prev, r.body) != r.chain):
            rep.broken = Broken(r.key, "the record was changed after it was written")
            return
        if r.prev is not None and expected is not None and r.prev != expected:
            before = f"{last.key}" if last is not None else "the start"
            rep.broken = Broken(
                r.key, f"it does not link to {before}: a record was removed, inserted or moved"
            )
            return
        rep.checked += r.body is not None
        expected, last = r.chain, r
    if head is None:
        if last is not None and last.chain is not None:
            rep.broken = Broken(last.key, "records are linked but the chain's head is missing")
        return
    head_key, head_hash = head
    if last is None or last.chain is None:
        if head_key and not contiguous:
            rep.broken = Broken(head_key, "the records up to the head were removed")
        return
    if last.key == head_key:
        if last.chain != head_hash:
            rep.broken = Broken(last.key, "the newest record does not match the chain's head")
    elif last.key > head_key:
        rep.broken = Broken(head_key + 1, "records after the chain's head were inserted")
    else:  # the journal too: its rows leave from the oldest end, never the newest
        rep.broken = Broken(last.key + 1, f"records {last.key + 1}..{head_key} were removed")


def verify_journal(path: Path) -> Report:
    """Check the gateway's journal (gateway/journal.py)."""
    rep = Report("journal", path)
    db = _readonly(path)
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(events)")}
        if "chain" not in cols:
            rep.unchained = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            rep.notes.append("written before the hash chain existed")
            return rep
        row = db.execute("SELECT seq, hash FROM chain_head").fetchone()
        head = (int(row[0]), bytes(row[1])) if row else None

        def recs() -> Iterator[_Rec]:
            for seq, type_, payload, prev, chain in db.execute(
                "SELECT seq, type, payload, prev, chain FROM events ORDER BY seq"
            ):
                body = journal_body(seq, type_, bytes(payload))
                yield _Rec(seq, _blob(prev), _blob(chain), body if chain is not None else None)

        _walk(rep, recs(), head, contiguous=True)
        return rep
    finally:
        db.close()


def verify_store(path: Path) -> Report:
    """Check the bridge's trace store (gateway/bridge/store.py) and its outbox documents."""
    from gateway.bridge.integrity import head, row_body

    rep = Report("trace store", path)
    db = _readonly(path)
    try:
        has_head = db.execute("SELECT 1 FROM meta WHERE key='chain_head'").fetchone()

        def recs() -> Iterator[_Rec]:
            cur = db.execute(
                "SELECT rid, prev, chain, 0 FROM events UNION ALL "
                "SELECT rid, prev, chain, 1 FROM pruned ORDER BY 1"
            )
            for rid, prev, chain, purged in cur:
                body = None if purged or chain is None else row_body(db, rid)
                yield _Rec(rid, _blob(prev), _blob(chain), body)

        _walk(rep, recs(), head(db) if has_head else None, contiguous=False)
        if rep.ok:
            _check_documents(db, rep)
        return rep
    finally:
        db.close()


def verify_access_log(path: Path) -> Report:
    """Check the trace store's access log (gateway/bridge/access.py): every row linked to the
    one before, the newest to ``meta.access_head``."""
    from gateway.bridge.access import access_body, access_head

    rep = Report("access log", path)
    db = _readonly(path)
    try:
        cols = {r[1] for r in db.execute("PRAGMA table_info(access_log)")}
        if "chain" not in cols:
            rep.unchained = db.execute("SELECT COUNT(*) FROM access_log").fetchone()[0]
            if rep.unchained:
                rep.notes.append("written before the access log was chained")
            return rep

        def recs() -> Iterator[_Rec]:
            for row in db.execute(
                "SELECT id, at, user, host, pid, query, subject, outcome, prev, chain "
                "FROM access_log ORDER BY id"
            ):
                chain = _blob(row[9])
                body = access_body(tuple(row[:8])) if chain is not None else None
                yield _Rec(int(row[0]), _blob(row[8]), chain, body)

        _walk(rep, recs(), access_head(db), contiguous=False)
        return rep
    finally:
        db.close()


def _check_documents(db: sqlite3.Connection, rep: Report) -> None:
    for number, first_rid, encoding, body, sha in db.execute(
        "SELECT number, first_rid, encoding, body, sha256 FROM documents ORDER BY id"
    ):
        xml = bytes(body)
        try:
            if encoding == "gzip+base64":
                xml = gzip.decompress(base64.b64decode(xml))
        except (ValueError, OSError):
            xml = b""
        if hashlib.sha256(xml).hexdigest() != sha:
            rep.broken = Broken(
                first_rid, f"outbox document {number} does not match its recorded SHA-256"
            )
            return


# -- command line --------------------------------------------------------------------------------
def add_command(sub: Any) -> None:
    s = sub.add_parser(
        "verify",
        help="check the hash chains of the journal and the trace store",
        description=(
            "Walk the tamper-evident hash chains of the gateway's journal and the bridge's "
            "trace store and report the first broken link. Exit 0 intact, 1 broken, 2 usage."
        ),
    )
    s.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="take both paths from it")
    s.add_argument("--journal", metavar="PATH", help="a journal file")
    s.add_argument("--store", metavar="PATH", help="a trace store file")
    s.add_argument("--json", action="store_true", help="one JSON object per store")
    s.set_defaults(func=cmd_verify)


def _targets(args: argparse.Namespace) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    if args.config:
        from gateway.config.loader import load_config

        cfg = load_config(args.config)
        out.append(("journal", Path(args.journal) if args.journal else cfg.journal.path))
        if args.store or cfg.bridge is not None:
            out.append(("store", Path(args.store) if args.store else cfg.bridge.store))  # type: ignore[union-attr]
        return out
    if args.journal:
        out.append(("journal", Path(args.journal)))
    if args.store:
        out.append(("store", Path(args.store)))
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.config.loader import ConfigError

    try:
        targets = _targets(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    if not targets:
        print("saltgw: error: give CONFIG.yaml, --journal PATH or --store PATH", file=sys.stderr)
        return 2
    status = 0
    for kind, path in targets:
        try:
            if kind == "journal":
                reports = [verify_journal(path)]
            else:
                reports = [verify_store(path), verify_access_log(path)]
        except FileNotFoundError:
            print(f"saltgw: error: no {kind} at {path}", file=sys.stderr)
            status = max(status, 2)
            continue
        except sqlite3.DatabaseError as exc:
            print(f"{kind} {path}: BROKEN: not a readable database: {exc}")
            status = max(status, 1)
            continue
        for rep in reports:
            if args.json:
                print(json.dumps(rep.to_json(), ensure_ascii=False))
            else:
                print(rep.line())
                for note in rep.notes:
                    print(f"  note: {note}")
            if not rep.ok:
                status = max(status, 1)
    return status
