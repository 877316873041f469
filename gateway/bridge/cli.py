"""``saltgw trace``, ``saltgw snapshot`` and ``saltgw xml validate`` (contract: "Command
line"). Registered by
gateway/cli.py through :func:`add_commands`; heavy imports (lxml) happen when a command runs."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.bridge.db import describe, is_url

__all__ = ["add_commands"]


class _Usage(Exception):
    """A user mistake: one line on stderr, exit status 2."""


def add_commands(sub: Any) -> None:
    s = sub.add_parser(
        "trace",
        help="trace a code or recall a batch from the local trace store",
        description=(
            "Answer from the bridge's trace store (QB/T 5279 5.1): a code's batch, case, "
            "pallet, CCP records of its batch and outbound records; a batch's codes and where "
            "they went. --purge runs the retention job (11.1)."
        ),
    )
    s.add_argument("code", nargs="?", metavar="CODE")
    s.add_argument("--batch", metavar="BATCH", help="list a batch's codes and where they went")
    s.add_argument(
        "--material",
        metavar="LOT",
        help="recall by a material lot: its batches, codes, cases, pallets and customers",
    )
    s.add_argument("--documents", action="store_true", help="list the outbox documents")
    s.add_argument("--purge", action="store_true", help="purge records past retention")
    s.add_argument(
        "--resend",
        metavar="NUMBER",
        help="queue a quarantined outbox document again (after the platform fixed the cause)",
    )
    s.add_argument(
        "--access-log",
        type=int,
        nargs="?",
        const=50,
        metavar="N",
        help="list the newest N trace queries (who, when, what; default 50)",
    )
    s.add_argument(
        "--quarantine",
        type=int,
        nargs="?",
        const=50,
        metavar="N",
        help="list the newest N messages the bridge quarantined (reason, topic, payload; "
        "default 50)",
    )
    s.add_argument("--config", metavar="CONFIG.yaml", help="config with a bridge: section")
    s.add_argument(
        "--store",
        metavar="PATH|URL",
        help="the trace store instead of --config: a SQLite file (default: var/bridge.db) or a "
        "postgresql:// URL (the enterprise store; chain key from $SALTGW_STORE_CHAIN_KEY)",
    )
    s.add_argument("--json", action="store_true", help="print JSON (one object per line)")
    s.add_argument("--ccp", type=int, default=20, metavar="N", help="CCP records to show (-1: all)")
    s.set_defaults(func=_guard(cmd_trace))

    p = sub.add_parser(
        "snapshot",
        help="build and publish the public snapshot the resolver reads, once",
        description=(
            "Bring the public snapshot's working copy up to date from the bridge's trace store "
            "and publish it now (QB/T 5279 9, 11.4; docs/bridge.md, 'Public snapshot'): to the "
            "config's bridge.public.path, or --out. The running bridge does the same every "
            "bridge.public.interval_secs."
        ),
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="config with a bridge: section")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="publish here instead (working copy PATH.work beside it); needed when the "
        "config has no bridge.public",
    )
    p.set_defaults(func=_guard(cmd_snapshot))

    m = sub.add_parser("store", help="the enterprise trace store on PostgreSQL")
    ms = m.add_subparsers(dest="store_cmd", required=True)
    g = ms.add_parser(
        "migrate",
        help="create or upgrade a PostgreSQL trace store's schema (alembic)",
        description=(
            "Bring the PostgreSQL trace store's schema to the revision this saltgw reads and "
            "writes (alembic, gateway/bridge/migrations; docs/scaling.md). Run it once before "
            "the first bridge starts and after each saltgw upgrade; bridges refuse a store at "
            "another revision. Concurrent runs wait for each other. A SQLite store needs none."
        ),
    )
    g.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="its bridge.store")
    g.add_argument("--store", metavar="URL", help="postgresql://user@host:port/db")
    g.set_defaults(func=_guard(cmd_store_migrate))

    x = sub.add_parser("xml", help="XML documents saltgw produces")
    xs = x.add_subparsers(dest="xml_verb", required=True, metavar="ACTION")
    v = xs.add_parser(
        "validate",
        help="validate documents against their schema",
        description=(
            "Validate EPCIS 2.0 documents against GS1's XSD and platform documents against the "
            "schema shipped with saltgw (chosen by the root namespace); gzip+base64 bodies are "
            "decoded first. Each file's line names the schema file it was checked against. "
            "Exit 0 when all are valid, 1 when one is not."
        ),
    )
    v.add_argument("files", nargs="+", metavar="FILE")
    v.add_argument(
        "--xsd",
        metavar="PATH",
        help="GS1 EPCIS 2.0 XSD (default: $SALTGW_EPCIS_XSD, else ../shared/reference/"
        "epcis-2.0/xsd/EPCglobal-epcis-2_0.xsd next to the source tree)",
    )
    v.set_defaults(func=_guard(cmd_xml_validate))


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except _Usage as exc:
            print(f"saltgw: error: {exc}", file=sys.stderr)
            return 2

    return run


# -- trace ---------------------------------------------------------------------------------------
def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from gateway.bridge.config import BridgeSection
    from gateway.bridge.store import TraceStore

    cfg = None
    if args.config:
        from gateway.config.loader import ConfigError, load_config

        try:
            full = load_config(args.config)
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            raise SystemExit(2) from None
        if full.bridge is None:
            raise _Usage(f"{args.config}: no bridge: section, so no trace store")
        cfg = full.bridge
        path = _store_arg(args.store) if args.store else cfg.store
    elif args.store:
        path = _store_arg(args.store)
    else:  # the default store of a bridge run from this directory
        path = BridgeSection().store
        if not is_url(path) and not Path(path).exists():
            raise _Usage(
                f"no trace store at {path}: give --config CONFIG.yaml (its bridge.store is "
                "read) or --store PATH|URL"
            )
    from gateway.bridge.integrity import store_chain_key

    if not is_url(path) and not Path(path).exists():
        raise _Usage(f"no trace store at {path} (has the bridge run yet?)")
    key = store_chain_key(cfg or BridgeSection(), path)
    try:
        return TraceStore(path, create=False, chain_key=key), cfg
    except FileNotFoundError:
        raise _Usage(f"no trace store at {path} (has the bridge run yet?)") from None
    except sqlite3.OperationalError as exc:  # a PostgreSQL store: unreachable, not migrated
        raise _Usage(str(exc)) from None


def _store_arg(value: str) -> Path | str:
    """``--store``: a ``postgresql://`` URL as it is, else a SQLite file's path."""
    return value if is_url(value) else Path(value)


def cmd_trace(args: argparse.Namespace) -> int:
    from gateway.bridge import access

    log_n = args.access_log
    chosen = [
        bool(args.code), bool(args.batch), args.documents, args.purge, log_n is not None,
        bool(args.resend), args.quarantine is not None, bool(args.material),
    ]  # fmt: skip
    if sum(chosen) != 1:
        raise _Usage(
            "give one of CODE, --batch BATCH, --material LOT, --documents, --purge, "
            "--resend NUMBER, --access-log, --quarantine"
        )
    store, cfg = _open(args)
    try:
        if log_n is not None:
            return access.show(store.db, log_n, args.json)
        if args.quarantine is not None:
            from gateway.bridge import trace_output as out

            with _held() as held:
                rc = out.quarantine(store.db, args.quarantine, args.json)
            access.record(store.db, "quarantine", None, "done", key=store.chain_key)
            return _release(held, rc)
        if args.resend:
            return _resend(store.db, args.resend, store.chain_key)
        if args.purge:
            query, subject = "purge", None
        elif args.documents:
            query, subject = "documents", None
        elif args.batch:
            query, subject = "batch", args.batch
        elif args.material:
            query, subject = "material", args.material
        else:
            query, subject = "code", args.code
        with _held() as held:  # the answer waits until its access row is committed
            rc = _answer(store, query, subject, cfg, args)
        outcome = "done" if subject is None else ("found" if rc == 0 else "not found")
        access.record(store.db, query, subject, outcome, key=store.chain_key)
        return _release(held, rc)
    finally:
        store.close()


@contextlib.contextmanager
def _held() -> Iterator[io.StringIO]:
    """Collect what the answer prints, so that it is printed only after its access row is
    committed (gateway/bridge/access.py): a reader that closes the pipe early still leaves
    the row."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


def _release(held: io.StringIO, rc: int) -> int:
    """Print the held answer; a reader that went away (closed pipe) ends the command quietly."""
    try:
        sys.stdout.write(held.getvalue())
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        os.close(devnull)
    return rc


def _resend(db: Any, number: str, key: bytes) -> int:
    from gateway.bridge import access
    from gateway.bridge.upload import CannotResend, resend

    try:
        resend(db, number, access.who())
    except CannotResend as exc:
        access.record(db, "resend", number, "refused", key=key)
        print(f"saltgw: error: {exc}", file=sys.stderr)
        return 1
    access.record(db, "resend", number, "queued", key=key)
    print(f"document {number} queued again; the bridge sends it on its next pass")
    return 0


def _answer(store: Any, query: str, subject: str | None, cfg: Any, args: argparse.Namespace) -> int:
    from gateway.bridge import trace_output as out

    db = store.db
    if query == "purge":
        return out.purge(db, cfg, args.json, store.chain_key)
    if query == "documents":
        return out.documents(db, args.json)
    if query == "batch":
        return out.batch(db, str(subject), cfg, args.json)
    if query == "material":
        return out.material(db, str(subject), args.json)
    return out.code(db, str(subject), cfg, args.json, None if args.ccp < 0 else args.ccp)


# -- snapshot -----------------------------------------------------------------------------------
def cmd_snapshot(args: argparse.Namespace) -> int:
    from datetime import datetime

    from gateway.bridge.config import PublicSnapshotSection
    from gateway.bridge.public import SnapshotWriter, open_store
    from gateway.bridge.service import node_of
    from gateway.config.loader import ConfigError, load_config

    try:
        full = load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    bcfg = full.bridge
    if bcfg is None:
        raise _Usage(f"{args.config}: no bridge: section, so no trace store")
    if args.out:
        pub = PublicSnapshotSection(path=Path(args.out))
    elif bcfg.public is not None:
        pub = bcfg.public
    else:
        raise _Usage(f"{args.config}: no bridge.public section: give --out PATH")
    try:
        store = open_store(bcfg.store)
    except FileNotFoundError:
        where = describe(bcfg.store)
        raise _Usage(f"no trace store at {where} (has the bridge run yet?)") from None
    tz = full.gateway.tz()
    writer = SnapshotWriter(pub, bcfg, enterprise=full.gateway.enterprise, source=node_of(full),
                            clock=lambda: datetime.now(tz))  # fmt: skip
    try:
        events = writer.update(store)
        codes = writer.publish()
    finally:
        writer.close()
        store.close()
    src = describe(bcfg.store)
    print(f"published {pub.path}: {codes} codes ({events} new events read from {src})")
    return 0


# -- xml validate --------------------------------------------------------------------------------
def cmd_store_migrate(args: argparse.Namespace) -> int:
    store: Path | str | None = args.store
    if store is None and args.config:
        from gateway.config.loader import ConfigError, load_config

        try:
            full = load_config(args.config)
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            return 2
        store = full.bridge.store if full.bridge else None
    if not is_url(store):
        raise _Usage(
            "saltgw store migrate needs a PostgreSQL store: --store postgresql://… or a config "
            f"whose bridge.store is one (got {store!s}; a SQLite store needs no migration)"
        )
    try:
        from gateway.bridge.migrations import migrate
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise _Usage(
            f"the postgres extra is not installed ({exc}): pip install 'saltgw[postgres]'"
        ) from None
    url = str(store)
    try:
        before, after = migrate(url)
    except Exception as exc:  # alembic, SQLAlchemy or psycopg: say what and where
        raise _Usage(f"migrating {describe(url)} failed: {type(exc).__name__}: {exc}") from None
    if before == after:
        print(f"{describe(url)}: schema at revision {after}, nothing to do")
    else:
        print(f"{describe(url)}: schema migrated from {before or 'nothing'} to revision {after}")
    return 0


def cmd_xml_validate(args: argparse.Namespace) -> int:
    from gateway.bridge.xmlcheck import SchemaMissing, check_document, decode_body

    xsd = Path(args.xsd) if args.xsd else None
    if xsd is not None and not xsd.is_file():
        raise _Usage(f"--xsd {xsd}: no such file")
    bad = 0
    for name in args.files:
        try:
            raw = Path(name).read_bytes()
        except OSError as exc:
            raise _Usage(f"{name}: cannot read: {exc.strerror}") from None
        try:
            result = check_document(decode_body(raw), xsd)
        except ValueError as exc:
            print(f"{name}:1:1: error: {exc}")
            bad += 1
            continue
        except SchemaMissing as exc:
            raise _Usage(f"{name}: {exc}") from None
        if result.valid:
            print(f"{name}: valid ({result.kind}; schema {result.schema})")
        else:
            bad += 1
            for err in result.errors:  # "LINE:COL: message"
                loc, _, msg = err.partition(": ")
                print(f"{name}:{loc}: error: {msg}")
            if result.schema is not None:
                print(f"{name}: checked against {result.schema}")
    return 1 if bad else 0
