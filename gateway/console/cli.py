"""``saltgw console CONFIG.yaml [--listen HOST:PORT]`` (the web console, docs/console.md) and
``saltgw console-user USERS.json add|remove|list …`` (its users)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]

log = logging.getLogger("saltgw")

NEEDS = ("waitress", "jinja2")


def add_commands(sub: Any) -> None:
    s = sub.add_parser(
        "console",
        help="the internal web console: line overview, charts, uploads, trace and recall "
        "(docs/console.md)",
        description="Serve the web console for operators and quality staff from the gateway's "
        "MQTT topics and the bridge's trace store; prints 'console: http://HOST:PORT/' once "
        "listening.",
    )
    s.add_argument("config", metavar="CONFIG.yaml", help="a file with a console: section")
    s.add_argument("--listen", metavar="HOST:PORT", help="override console.listen (port 0: any)")
    s.set_defaults(func=cmd_console)

    u = sub.add_parser(
        "console-user",
        help="add, change, remove or list the web console's users",
        description="Manage the console's users file (roles operator, quality, admin; "
        "passwords hashed with scrypt). The password is read from the terminal, or from "
        "standard input with --password-stdin.",
    )
    u.add_argument("users", metavar="USERS.json", help="the users file (console.users)")
    u.add_argument("action", choices=["add", "remove", "list"])
    u.add_argument("name", nargs="?", metavar="NAME")
    u.add_argument("--role", choices=["operator", "quality", "admin"], help="with add")
    u.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    u.set_defaults(func=cmd_console_user)


def cmd_console(args: argparse.Namespace) -> int:
    from gateway.cli import UserError
    from gateway.config.extras import needs_message
    from gateway.config.loader import ConfigError, read_console_config
    from gateway.web.listen import parse_listen

    try:
        cfg = read_console_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(2) from None
    if args.listen:
        try:
            parse_listen(args.listen)
        except ValueError as exc:
            raise UserError(f"--listen: {exc}") from None
    missing = needs_message("saltgw console", {"resolver": NEEDS})
    if missing:
        raise UserError(missing)
    from gateway.console.server import ConsoleServer

    try:
        server = ConsoleServer(cfg, listen=args.listen)
    except OSError as exc:
        where = args.listen or cfg.listen
        raise UserError(f"console: cannot listen on {where}: {exc.strerror}") from None
    if not cfg.users.is_file():
        log.warning("console: no users file at %s: add users with saltgw console-user", cfg.users)
    print(f"console: {server.url}", flush=True)
    server.serve_forever()
    return 0


def cmd_console_user(args: argparse.Namespace) -> int:
    from gateway.cli import UserError
    from gateway.console.users import UsersError, UsersFile

    users = UsersFile(Path(args.users))
    try:
        if args.action == "list":
            for u in sorted(users.load().values(), key=lambda u: u.name):
                print(f"{u.name}\t{u.role}")
            return 0
        if not args.name:
            raise UserError(f"console-user {args.action} needs NAME")
        if args.action == "remove":
            users.remove(args.name)
            print(f"{args.users}: removed {args.name}")
            return 0
        if not args.role:
            raise UserError("console-user add needs --role operator|quality|admin")
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise UserError("the passwords differ")
        users.set(args.name, args.role, password)
    except UsersError as exc:
        raise UserError(str(exc)) from None
    print(f"{args.users}: {args.name} ({args.role})")
    return 0
