"""``saltgw import CONFIG.yaml KIND FILE.csv|FILE.xlsx`` (docs/records.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.records.models import KINDS

__all__ = ["add_command"]


def add_command(sub: Any) -> None:
    s = sub.add_parser(
        "import",
        help="import lab / material / release / return records (CSV, XLSX) into a running "
        "gateway, or producers' EPCIS documents",
        description=(
            "Read records (QB/T 5279 tables 1-3) from a UTF-8 CSV file or an Excel workbook "
            "(.xlsx, the xlsx extra) exported by a LIMS or MES, check every row, and send them "
            "to the running gateway of CONFIG over MQTT; "
            "each is journaled once (a re-import adds nothing). A file with a bad row imports "
            "nothing unless --partial. docs/records.md. KIND epcis: producers' EPCIS 2.0 "
            "documents (one or more FILE.xml) into the line's trace store, so that a "
            "wholesaler's scanners expand cases and pallets to their bags; a document with an "
            "error imports nothing, a re-import changes nothing. docs/wholesale.md"
        ),
    )
    s.add_argument("config", metavar="CONFIG.yaml")
    kinds = (*KINDS, "epcis")
    s.add_argument("kind", choices=kinds, metavar="KIND", help=f"one of {', '.join(kinds)}")
    s.add_argument(
        "files", nargs="+", metavar="FILE", help="FILE.csv or FILE.xlsx, or FILE.xml... for epcis"
    )
    s.add_argument("--sheet", metavar="NAME", help="the workbook's sheet to read (default: the "
                   "first)")  # fmt: skip
    s.add_argument("--partial", action="store_true", help="import the good rows of a bad file")
    s.add_argument(
        "--issuer", metavar="NAME", help="the commands: issuer to sign as (its key from config)"
    )
    s.add_argument("--broker", metavar="URL", help="broker URL instead of the config's mqtt.url")
    s.add_argument("--check", action="store_true", help="check the file only; send nothing")
    s.add_argument("--timeout", type=float, default=30.0, metavar="SECS")
    s.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.cli import _load
    from gateway.records.file_import import read_records
    from gateway.records.importer import ImportError_, send_records

    cfg = _load(args.config)
    if args.kind == "epcis":
        from datetime import datetime

        from gateway.wholesale.import_cmd import import_epcis

        now = datetime.now(cfg.gateway.tz())
        return import_epcis(cfg, args.files, check=args.check, now=now)
    if len(args.files) != 1:
        print(f"saltgw: error: import {args.kind} takes one CSV or XLSX file", file=sys.stderr)
        return 2
    args.file = args.files[0]
    good, errors = read_records(
        Path(args.file), args.kind, cfg.gateway.tz(), args.file, sheet=args.sheet
    )
    for err in errors:
        print(err, file=sys.stderr)
    if errors and not args.partial:
        print(f"{args.file}: {len(errors)} error(s) in the file: nothing imported "
              "(fix them, or --partial to import the good rows)", file=sys.stderr)  # fmt: skip
        return 1
    if args.check:
        print(f"{args.file}: {len(good)} {args.kind} record(s) good, {len(errors)} error(s)")
        return 1 if errors else 0
    try:
        answers = send_records(
            cfg, args.kind, good, issuer=args.issuer, broker_url=args.broker,
            timeout_secs=args.timeout,
        )  # fmt: skip
    except ImportError_ as exc:
        print(f"saltgw: error: {exc}", file=sys.stderr)
        return 1
    new = dup = refused = 0
    for rec, ans in zip(good, answers, strict=True):
        if ans.get("status") != "accepted":
            refused += 1
            print(f"{args.file}:{rec.row}: error: the gateway refused it: {ans.get('reason')}",
                  file=sys.stderr)  # fmt: skip
        elif ans.get("duplicate"):
            dup += 1
        else:
            new += 1
    print(f"{args.file}: {new} {args.kind} record(s) journaled, {dup} already journaled, "
          f"{refused} refused, {len(errors)} bad row(s) skipped")  # fmt: skip
    return 1 if errors or refused else 0
