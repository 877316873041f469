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
import hmac
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from gateway.bridge.db import Db, columns, describe, is_url, open_db
from gateway.chain import (
    ALG_HMAC,
    GENESIS,
    Marker,
    configured_chain_key,
    existing_chain_key,
    journal_body,
    link,
)

__all__ = [
    "Anchor",
    "Broken",
    "KeyMissing",
    "Report",
    "add_command",
    "verify_access_log",
    "verify_journal",
    "verify_store",
]

VERIFY_PAGE = 1000  # trace store records read per query (their bodies: one query per table)


class KeyMissing(Exception):
    """A keyed chain and no key to check it with (exit 2: a usage error, not a verdict)."""


@dataclass(frozen=True, slots=True)
class Broken:
    at: int  # seq (journal) or rid (trace store) of the first record that fails
    reason: str


@dataclass(frozen=True, slots=True)
class Anchor:
    """A chain head kept outside the machine: ``KEY:HEX`` (seq or record id, chain hex)."""

    key: int
    hash: bytes

    @classmethod
    def parse(cls, text: str) -> Anchor:
        key, sep, hexed = text.partition(":")
        try:
            anchor = cls(int(key), bytes.fromhex(hexed))
        except ValueError:
            anchor = None
        if not sep or anchor is None or anchor.key < 1 or len(anchor.hash) != 32:
            raise ValueError(f"{text!r} is not SEQ:HEX (a record number and 64 hex digits)")
        return anchor


@dataclass(slots=True)
class Report:
    store: str  # "journal" | "trace store" | "access log"
    path: Path | str  # a file, or a PostgreSQL store's URL (shown without its password)
    checked: int = 0  # records whose link was verified
    unchained: int = 0  # records written before the chain existed (nothing to verify)
    unkeyed: int = 0  # records checked whose links are plain SHA-256 (before keyed chains)
    notes: list[str] = field(default_factory=list)
    broken: Broken | None = None
    head: tuple[int, bytes] | None = None  # (seq or rid, chain) to compare with the anchor
    keyed_from: int | None = None  # the marker's first keyed record (None: no marker)

    @property
    def ok(self) -> bool:
        return self.broken is None

    @property
    def unit(self) -> str:
        return {"journal": "seq", "access log": "row id"}.get(self.store, "record rid")

    def line(self) -> str:
        where = f"{self.store} {self.path}"
        extra = f", {self.unchained} written before the chain (unchecked)" if self.unchained else ""
        if self.unkeyed:
            extra += f", {self.unkeyed} of them with unkeyed SHA-256 links"
        if self.broken is None:
            return f"{where}: intact ({self.checked} records checked{extra})"
        return (
            f"{where}: BROKEN at {self.unit} {self.broken.at}: {self.broken.reason} "
            f"({self.checked} records before it intact{extra})"
        )

    def head_line(self) -> str | None:
        if self.head is None:
            return None
        key, chain = self.head
        return f"head: {self.unit} {key} hash {chain.hex()} (as an anchor: {key}:{chain.hex()})"

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "path": str(self.path),
            "ok": self.ok,
            "checked": self.checked,
            "unchained": self.unchained,
            "unkeyed": self.unkeyed,
            "keyed_from": self.keyed_from,
            "alg": ALG_HMAC if self.keyed_from is not None else None,
            "head": None if self.head is None else f"{self.head[0]}:{self.head[1].hex()}",
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


def _store_db(path: Path | str) -> Db:
    """A trace store read-only: its SQLite file or its PostgreSQL database."""
    if is_url(path):
        return open_db(path, readonly=True)
    return _readonly(Path(path))


def _readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(str(path))
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


def _blob(v: bytes | None) -> bytes | None:
    return None if v is None else bytes(v)


@dataclass(frozen=True, slots=True)
class _Keying:
    """How a chain is keyed: its marker (None: none, every link is plain SHA-256) and the key."""

    mark: Marker | None
    key: bytes | None

    def keyed(self, rec_key: int) -> bool:
        return self.mark is not None and rec_key >= self.mark.keyed_from


def _keying(rep: Report, name: str, mark: Marker | None, key: bytes | None, how: str) -> _Keying:
    """Check the marker against the key; sets ``rep.broken`` or raises :class:`KeyMissing`."""
    if mark is None:
        return _Keying(None, key)
    rep.keyed_from = mark.keyed_from
    if key is None:
        raise KeyMissing(f"{rep.store} {rep.path} is chained with a key and none was found: {how}")
    if not mark.valid(key, name):
        rep.broken = Broken(
            mark.keyed_from,
            "the chain marker does not verify with this key (the wrong key, or the marker "
            "was edited)",
        )
    elif mark.keyed_from > 1:
        rep.notes.append(
            f"records before {rep.unit} {mark.keyed_from} were written before keyed chains: "
            "their links are plain SHA-256 (only the anchor proves them unaltered)"
        )
    return _Keying(mark, key)


def _walk(
    rep: Report,
    recs: Iterable[_Rec],
    head: tuple[int, bytes] | None,
    *,
    contiguous: bool,
    keying: _Keying,
) -> None:
    """The chain rules over records in key order. ``contiguous``: keys are consecutive
    integers when nothing is missing (journal seqs); otherwise every record is present
    (trace store rids with purged links) and each links to the one before. Records at or after
    the marker's ``keyed_from`` must carry an HMAC link under the key; older ones carry a plain
    SHA-256 link or none."""
    if rep.broken is not None:
        return
    expected: bytes | None = None if contiguous else GENESIS
    last: _Rec | None = None
    for r in recs:
        keyed = keying.keyed(r.key)
        if r.chain is None:
            if keyed:
                assert keying.mark is not None
                rep.broken = Broken(
                    r.key,
                    "a record without a link in a chain keyed from "
                    f"{keying.mark.keyed_from} on: its links were removed",
                )
                return
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
        if r.body is not None:
            key = keying.key if keyed else None
            if r.prev is None or link(r.prev, r.body, key) != r.chain:
                reason = "the record was changed after it was written"
                if keyed:
                    reason += " (or its links were recomputed without the key)"
                elif (
                    keying.mark is None
                    and keying.key is not None
                    and r.prev is not None
                    and link(r.prev, r.body, keying.key) == r.chain
                ):
                    reason = "keyed links but the chain's marker was removed"
                rep.broken = Broken(r.key, reason)
                return
        if r.prev is not None and expected is not None and r.prev != expected:
            before = f"{last.key}" if last is not None else "the start"
            rep.broken = Broken(
                r.key, f"it does not link to {before}: a record was removed, inserted or moved"
            )
            return
        if r.body is not None:
            rep.checked += 1
            rep.unkeyed += not keyed
        expected, last = r.chain, r
    if head is None:
        if last is not None and last.chain is not None:
            rep.broken = Broken(last.key, "records are linked but the chain's head is missing")
        elif keying.mark is not None:  # the marker is written with the first keyed record
            rep.broken = Broken(
                keying.mark.keyed_from,
                "the chain's head is missing in a store chained from "
                f"{keying.mark.keyed_from} on: its records and head were removed",
            )
        return
    rep.head = head
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


def _anchor(rep: Report, anchor: Anchor | None, found: bytes | None, *, leaves: bool) -> None:
    """Compare the stored link of the anchor's record (``found``) with the anchor.
    ``leaves``: records leave this store (the journal's delivered rows), so a missing record
    older than the head cannot be checked here."""
    if anchor is None or rep.broken is not None:
        return
    head_key, head_hash = rep.head if rep.head is not None else (0, GENESIS)
    if found is None and anchor.key == head_key:
        found = head_hash
    if anchor.key > head_key:
        rep.broken = Broken(
            anchor.key,
            f"the anchor {anchor.key} is beyond the chain's head {head_key}: records after "
            "the head were removed",
        )
    elif found is None:
        if leaves:
            rep.notes.append(
                f"the anchor's {rep.unit} {anchor.key} has left the journal (delivered): not "
                "checkable here; compare the head with a newer anchor"
            )
        else:
            rep.broken = Broken(anchor.key, "the anchor's record is missing")
    elif found != anchor.hash:
        rep.broken = Broken(
            anchor.key, "the record does not match the anchor: the chain was rewritten"
        )
    else:
        rep.notes.append(f"matches the anchor {anchor.key}:{anchor.hash.hex()}")


def _columns(db: Db, table: str) -> set[str]:
    return columns(db, table)


def _meta_marker(db: Db, rep: Report, key: str) -> Marker | None:
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    if row is None:
        return None
    try:
        return Marker.parse(str(row[0]))
    except ValueError:
        rep.broken = Broken(0, f"meta.{key} is not a chain marker: it was edited")
        return None


def verify_journal(
    path: Path, key: bytes | None = None, *, anchor: Anchor | None = None, how: str = ""
) -> Report:
    """Check the gateway's journal (gateway/journal.py). ``key``: its chain key (None: the
    generated ``{path}.chain-key`` beside it, when there)."""
    rep = Report("journal", path)
    key = key if key is not None else existing_chain_key(path, what="journal chain key")
    db = _readonly(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        row = (
            db.execute("SELECT alg, keyed_from, mac FROM chain_alg").fetchone()
            if "chain_alg" in tables
            else None
        )
        mark = Marker(str(row[0]), int(row[1]), bytes(row[2])) if row else None
        keying = _keying(rep, "journal", mark, key, how or _how(path, "journal"))
        if "chain" not in _columns(db, "events") or "prev" not in _columns(db, "events"):
            if mark is not None:
                rep.broken = Broken(
                    mark.keyed_from,
                    "the chain columns were dropped from a journal chained from seq "
                    f"{mark.keyed_from} on",
                )
                return rep
            rep.unchained = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            rep.notes.append("written before the hash chain existed")
            return rep
        head_row = (
            db.execute("SELECT seq, hash FROM chain_head").fetchone()
            if "chain_head" in tables
            else None
        )
        head = (int(head_row[0]), bytes(head_row[1])) if head_row else None

        def recs() -> Iterator[_Rec]:
            for seq, type_, payload, prev, chain in db.execute(
                "SELECT seq, type, payload, prev, chain FROM events ORDER BY seq"
            ):
                body = journal_body(seq, type_, bytes(payload))
                yield _Rec(seq, _blob(prev), _blob(chain), body if chain is not None else None)

        _walk(rep, recs(), head, contiguous=True, keying=keying)
        if anchor is not None:
            got = db.execute("SELECT chain FROM events WHERE seq=?", (anchor.key,)).fetchone()
            _anchor(rep, anchor, _blob(got[0]) if got else None, leaves=True)
        return rep
    finally:
        db.close()


def _how(path: Path | str, kind: str) -> str:
    var, opt = (
        ("SALTGW_JOURNAL_CHAIN_KEY", "--journal-key-file")
        if kind == "journal"
        else ("SALTGW_STORE_CHAIN_KEY", "--store-key-file")
    )
    if is_url(path):  # a PostgreSQL store has no key file beside it
        return f"set ${var}, give {opt} PATH or the config"
    return f"set ${var}, give {opt} PATH or the config, or put {Path(path).name}.chain-key back"


def verify_store(
    path: Path | str,
    key: bytes | None = None,
    *,
    anchor: Anchor | None = None,
    min_days: int | None = None,
    how: str = "",
) -> Report:
    """Check the bridge's trace store (gateway/bridge/store.py), its purged records against the
    retention rule (``min_days``: bridge.retention.min_days) and its outbox documents."""
    from gateway.bridge.config import RetentionSection
    from gateway.bridge.integrity import CHAIN, head, row_bodies

    rep = Report("trace store", describe(path) if is_url(path) else path)
    if key is None and not is_url(path):
        key = existing_chain_key(Path(path), what="trace store chain key")
    db = _store_db(path)
    try:
        mark = _meta_marker(db, rep, "chain_alg")
        if rep.broken is not None:
            return rep
        keying = _keying(rep, CHAIN, mark, key, how or _how(path, "store"))
        if not {"prev", "chain"} <= _columns(db, "events"):
            rep.broken = Broken(
                mark.keyed_from if mark else 0,
                "the chain columns were dropped from the store's events",
            )
            return rep
        has_head = db.execute("SELECT 1 FROM meta WHERE key='chain_head'").fetchone()

        def recs() -> Iterator[_Rec]:
            # in pages, each page's bodies in one query per table (row_bodies); a page ends
            # before its last rid, which comes again whole in the next (a rid may be in both
            # tables: a record copied into pruned and kept is two records, both walked)
            after = -1
            while page := db.execute(
                "SELECT rid, prev, chain, 0 FROM events WHERE rid > ? UNION ALL "
                "SELECT rid, prev, chain, 1 FROM pruned WHERE rid > ? ORDER BY 1 LIMIT ?",
                (after, after, VERIFY_PAGE),
            ).fetchall():
                if len(page) == VERIFY_PAGE:
                    page = [r for r in page if r[0] != page[-1][0]] or page
                live = [r[0] for r in page if not r[3] and r[2] is not None]
                bodies = row_bodies(db, live[0], live[-1]) if live else {}
                for rid, prev, chain, purged in page:
                    body = None if purged or chain is None else bodies.get(rid)
                    yield _Rec(rid, _blob(prev), _blob(chain), body)
                after = page[-1][0]

        _walk(rep, recs(), head(db) if has_head else None, contiguous=False, keying=keying)
        if rep.ok:
            days = min_days if min_days is not None else RetentionSection().min_days
            _check_pruned(db, rep, keying, days)
        if rep.ok:
            _check_documents(db, rep)
        if anchor is not None:
            got = db.execute(
                "SELECT chain FROM events WHERE rid=? UNION ALL SELECT chain FROM pruned "
                "WHERE rid=?",
                (anchor.key, anchor.key),
            ).fetchone()
            _anchor(rep, anchor, _blob(got[0]) if got else None, leaves=False)
        return rep
    finally:
        db.close()


def _check_pruned(db: Db, rep: Report, keying: _Keying, min_days: int) -> None:
    """Every purged record was purged by retention (gateway/bridge/retention.py): its row holds
    the date its span counts from, the day it was kept until and the day it was purged under
    the key (integrity.pruned_mac), and the rule held: kept until at least ``since +
    min_days`` (QB/T 5279-2018 11.1 and saltgw's two years) and purged only after that day."""
    from gateway.bridge.integrity import pruned_mac

    cols = _columns(db, "pruned")
    if not {"since", "kept_until", "pruned_on", "mac"} <= cols:
        if (
            keying.mark is not None
            and db.execute(
                "SELECT 1 FROM pruned WHERE rid >= ?", (keying.mark.keyed_from,)
            ).fetchone()
        ):
            rep.broken = Broken(keying.mark.keyed_from, "the retention seals of purged records "
                                "were dropped")  # fmt: skip
        return
    legacy = 0
    for rid, chain, since, until, on, mac in db.execute(
        "SELECT rid, chain, since, kept_until, pruned_on, mac FROM pruned ORDER BY rid"
    ):
        if mac is None and not keying.keyed(rid):
            legacy += 1
            continue
        if mac is None or keying.key is None:
            rep.broken = Broken(
                rid,
                "a purged record without a retention seal: it was removed by hand (its links "
                "copied into pruned)",
            )
            return
        want = pruned_mac(keying.key, rid, bytes(chain), str(since), str(until), str(on))
        if not hmac.compare_digest(want, bytes(mac)):
            rep.broken = Broken(rid, "the purged record's retention seal does not match: edited")
            return
        try:
            d_since, d_until, d_on = (date.fromisoformat(str(v)) for v in (since, until, on))
        except ValueError:
            rep.broken = Broken(rid, "the purged record's retention dates do not parse")
            return
        if d_until < d_since + timedelta(days=min_days) or d_on <= d_until:
            rep.broken = Broken(
                rid,
                f"purged on {d_on} though it had to be kept until at least "
                f"{max(d_until, d_since + timedelta(days=min_days))} (retention, QB/T "
                "5279-2018 11.1)",
            )
            return
    if legacy:
        rep.notes.append(
            f"{legacy} records purged before retention seals existed (their retention is not "
            "checked)"
        )


def verify_access_log(path: Path | str, key: bytes | None = None, *, how: str = "") -> Report:
    """Check the trace store's access log (gateway/bridge/access.py): every row linked to the
    one before, the newest to ``meta.access_head``."""
    from gateway.bridge.access import access_body, access_head

    rep = Report("access log", describe(path) if is_url(path) else path)
    if key is None and not is_url(path):
        key = existing_chain_key(Path(path), what="trace store chain key")
    db = _store_db(path)
    try:
        mark = _meta_marker(db, rep, "access_alg")
        if rep.broken is not None:
            return rep
        keying = _keying(rep, "access log", mark, key, how or _how(path, "store"))
        cols = _columns(db, "access_log")
        if "chain" not in cols:
            if mark is not None:
                rep.broken = Broken(mark.keyed_from, "the chain columns of the access log were "
                                    "dropped")  # fmt: skip
                return rep
            rep.unchained = db.execute("SELECT COUNT(*) FROM access_log").fetchone()[0]
            if rep.unchained:
                rep.notes.append("written before the access log was chained")
            return rep

        def recs() -> Iterator[_Rec]:
            for row in db.execute(
                'SELECT id, at, "user", host, pid, query, subject, outcome, prev, chain '
                "FROM access_log ORDER BY id"
            ):
                chain = _blob(row[9])
                body = access_body(tuple(row[:8])) if chain is not None else None
                yield _Rec(int(row[0]), _blob(row[8]), chain, body)

        _walk(rep, recs(), access_head(db), contiguous=False, keying=keying)
        return rep
    finally:
        db.close()


def _check_documents(db: Db, rep: Report) -> None:
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
            "Walk the tamper-evident keyed hash chains of the gateway's journal and the "
            "bridge's trace store, report the first broken link and print each chain's head "
            "to compare with its anchor (the retained …/gateway/{id}/chain message, the "
            "ChainHead of the newest upload document). Exit 0 intact, 1 broken, 2 usage."
        ),
    )
    s.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="take paths and keys from it")
    s.add_argument("--journal", metavar="PATH", help="a journal file")
    s.add_argument("--store", metavar="PATH|URL", help="a trace store file, or a postgresql:// URL")
    s.add_argument("--journal-key-file", metavar="PATH", help="the journal's chain key file")
    s.add_argument("--store-key-file", metavar="PATH", help="the trace store's chain key file")
    s.add_argument(
        "--anchor", metavar="SEQ:HEX", help="the journal's head as published (…/gateway/{id}/chain)"
    )
    s.add_argument(
        "--store-anchor", metavar="RID:HEX", help="the store's head as an upload document has it"
    )
    s.add_argument("--json", action="store_true", help="one JSON object per store")
    s.set_defaults(func=cmd_verify)


@dataclass(frozen=True, slots=True)
class _Target:
    kind: str  # journal | store
    path: Path | str
    key: bytes | None
    min_days: int | None = None


def _targets(args: argparse.Namespace) -> list[_Target]:
    from gateway.bridge.config import BridgeSection
    from gateway.config.models import JournalSection

    jfile = Path(args.journal_key_file) if args.journal_key_file else None
    sfile = Path(args.store_key_file) if args.store_key_file else None
    jsec, bsec = JournalSection(), BridgeSection()
    jpath: Path | None
    spath: Path | str | None
    if args.config:
        from gateway.config.loader import load_config

        cfg = load_config(args.config)
        jsec, bsec = cfg.journal, cfg.bridge or bsec
        jpath = Path(args.journal) if args.journal else cfg.journal.path
        spath = _store_arg(args.store) if args.store else (bsec.store if cfg.bridge else None)
    else:
        jpath = Path(args.journal) if args.journal else None
        spath = _store_arg(args.store) if args.store else None
    out: list[_Target] = []
    if jpath is not None:
        key = existing_chain_key(
            jpath, jsec.chain_key_env, jfile or jsec.chain_key_file, "journal chain key"
        )
        out.append(_Target("journal", jpath, key))
    if spath is not None:
        if is_url(spath):
            key = configured_chain_key(
                bsec.chain_key_env, sfile or bsec.chain_key_file, "trace store chain key"
            )
        else:
            key = existing_chain_key(
                Path(spath), bsec.chain_key_env, sfile or bsec.chain_key_file,
                "trace store chain key",
            )  # fmt: skip
        out.append(_Target("store", spath, key, bsec.retention.min_days))
    return out


def _store_arg(value: str) -> Path | str:
    return value if is_url(value) else Path(value)


def cmd_verify(args: argparse.Namespace) -> int:
    from drivers.secrets import SecretError
    from gateway.config.loader import ConfigError

    try:
        anchor = Anchor.parse(args.anchor) if args.anchor else None
        store_anchor = Anchor.parse(args.store_anchor) if args.store_anchor else None
    except ValueError as exc:
        print(f"saltgw: error: {exc}", file=sys.stderr)
        return 2
    try:
        targets = _targets(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    except SecretError as exc:
        print(f"saltgw: error: {exc}", file=sys.stderr)
        return 2
    if not targets:
        print("saltgw: error: give CONFIG.yaml, --journal PATH or --store PATH", file=sys.stderr)
        return 2
    status = 0
    for t in targets:
        try:
            if t.kind == "journal":
                reports = [verify_journal(Path(t.path), t.key, anchor=anchor)]
            else:
                reports = [
                    verify_store(t.path, t.key, anchor=store_anchor, min_days=t.min_days),
                    verify_access_log(t.path, t.key),
                ]
        except FileNotFoundError:
            print(f"saltgw: error: no {t.kind} at {describe(t.path)}", file=sys.stderr)
            status = max(status, 2)
            continue
        except (KeyMissing, SecretError) as exc:
            print(f"saltgw: error: {exc}", file=sys.stderr)
            status = max(status, 2)
            continue
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and is_url(t.path):
                print(f"saltgw: error: {exc}", file=sys.stderr)  # unreachable, not migrated
                status = max(status, 2)
                continue
            print(f"{t.kind} {describe(t.path)}: BROKEN: not a readable database: {exc}")
            status = max(status, 1)
            continue
        for rep in reports:
            if args.json:
                print(json.dumps(rep.to_json(), ensure_ascii=False))
            else:
                print(rep.line())
                head = rep.head_line()
                if head is not None:
                    print(f"  {head}")
                for note in rep.notes:
                    print(f"  note: {note}")
            if not rep.ok:
                status = max(status, 1)
    return status
