"""``saltgw resolver CONFIG.yaml [--listen HOST:PORT]``: the public query service
(docs/resolver.md); ``--export queries|complaints --output FILE.csv [--since YYYY-MM-DD]``
writes the query records or complaints for quality staff instead."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path
from typing import Any

__all__ = ["add_command"]

log = logging.getLogger("saltgw")

NEEDS = ("waitress", "jinja2")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD; got {text!r}") from None


def add_command(sub: Any) -> None:
    s = sub.add_parser(
        "resolver",
        help="the public query service consumers' scans reach (QB/T 5279 9; docs/resolver.md)",
        description="Serve the consumer's page (/q/CODE), the input form (/), the JSON API "
        "(/api/v1/codes/CODE) and the complaint form from the public snapshot the bridge "
        "publishes; prints 'resolver: http://HOST:PORT/' once listening. With --export, write "
        "query records or complaints as CSV instead.",
    )
    s.add_argument("config", metavar="CONFIG.yaml", help="a file with a resolver: section")
    s.add_argument("--listen", metavar="HOST:PORT", help="override resolver.listen (port 0: any)")
    s.add_argument(
        "--export", choices=["queries", "complaints"], help="write these as CSV and exit"
    )
    s.add_argument("--output", metavar="FILE.csv", help="where --export writes (UTF-8 CSV)")
    s.add_argument(
        "--since",
        type=_day,
        metavar="YYYY-MM-DD",
        help="--export from this day on (the resolver's time zone)",
    )
    s.set_defaults(func=cmd_resolver)


def _section(path: str) -> Any:
    from gateway.config.loader import ConfigError, read_resolver_config

    try:
        return read_resolver_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_resolver(args: argparse.Namespace) -> int:
    from gateway.cli import UserError
    from gateway.config.extras import needs_message
    from gateway.web.listen import parse_listen

    cfg = _section(args.config)
    if args.export:
        return _export(args, cfg)
    if args.output or args.since:
        raise UserError("--output and --since go with --export")
    if args.listen:
        try:
            parse_listen(args.listen)
        except ValueError as exc:
            raise UserError(f"--listen: {exc}") from None
    missing = needs_message("saltgw resolver", {"resolver": NEEDS})
    if missing:
        raise UserError(missing)
    from gateway.resolver.server import ResolverServer
    from gateway.resolver.workers import WorkerPool

    server: ResolverServer | WorkerPool
    try:
        if cfg.workers > 1:
            server = WorkerPool(cfg, listen=args.listen)
        else:
            server = ResolverServer(cfg, listen=args.listen)
    except OSError as exc:
        where = args.listen or cfg.listen
        raise UserError(f"resolver: cannot listen on {where}: {exc.strerror}") from None
    print(f"resolver: {server.url}", flush=True)
    log.info("resolver: snapshot %s, query log %s", str(cfg.snapshot), str(cfg.query_log))
    server.serve_forever()
    return 0


def _export(args: argparse.Namespace, cfg: Any) -> int:
    from gateway.cli import UserError
    from gateway.resolver.export import export_file, since_ms
    from gateway.resolver.querylog import QueryLog

    if not args.output:
        raise UserError("--export needs --output FILE.csv")
    if not cfg.query_log.is_file():
        raise UserError(f"{cfg.query_log}: no query log (has the resolver run?)")
    qlog = QueryLog(cfg.query_log)
    try:
        n = export_file(
            qlog, args.export, Path(args.output), cfg.tz(), since_ms(args.since, cfg.tz())
        )
    except OSError as exc:
        raise UserError(f"{args.output}: cannot write: {exc.strerror}") from None
    finally:
        qlog.close()
    print(f"{args.output}: {n} {args.export}")
    return 0
