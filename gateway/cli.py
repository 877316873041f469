"""The ``saltgw`` command (contract: ../shared/design/contract.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from drivers.secrets import SecretError
from gateway.logs import setup_logging
from gateway.orphan import exit_when_orphaned

__all__ = ["main"]

log = logging.getLogger("saltgw")


class UserError(Exception):
    """A mistake by the user: printed as one line on stderr, exit status 2."""


def _load(  # type: ignore[no-untyped-def]
    path: str, need: tuple[str, ...] = (), also: Sequence[str] = ()
):
    """The config at ``path``, or exit 2 printing every issue. A device (``need`` "devices") or
    simulator ("simulators") whose optional packages are missing is an error, listed together
    with the config's other issues and with ``also`` (the command's own missing packages)."""
    from gateway.config.loader import ConfigError, read_config

    try:
        cfg, _warnings = read_config(path, need)
    except ConfigError as exc:
        issues = [str(i) for i in exc.issues]
    else:
        if not also:
            return cfg
        issues = []
    for line in also:
        print(f"saltgw: error: {line}", file=sys.stderr)
    for issue in issues:
        print(issue, file=sys.stderr)
    raise SystemExit(2)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


# -- verbs -------------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from gateway.config.loader import ConfigError, read_any_config

    failed = 0
    for f in args.files:
        try:  # a gateway config, or a file holding only resolver: (docs/resolver.md)
            _cfg, warnings = read_any_config(f)
        except ConfigError as exc:
            failed += 1
            for issue in exc.issues:
                print(issue)
        else:
            for warning in warnings:  # valid, but `saltgw run` needs an extra installed first
                print(warning)
            if not args.quiet:
                print(f"{f}: ok")
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from gateway.config.models import config_model

    if args.events:  # the event reference (gateway/event_schemas, docs/events.md)
        from gateway.event_schemas import events_schema, render_markdown

        if args.markdown:
            print(render_markdown(), end="")
        else:
            print(json.dumps(events_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.markdown:
        from gateway.config.reference import render_reference

        print(render_reference(), end="")
        return 0
    schema = config_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "saltgw configuration / tag map"
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return 0


def _load_map(path: str):  # type: ignore[no-untyped-def]
    """The map at ``path`` with its sha256 (gateway/config/loader.py), or exit 2 printing
    every issue."""
    from gateway.config.loader import ConfigError, read_map

    try:
        return read_map(path, ("devices",))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load_map(args.config)
    cfg = loaded.cfg
    from gateway.control import ControlServer, control_path
    from gateway.runtime import Gateway

    http = _host_port(args.http) if args.http else None
    token = _http_token(args.http_token_file) if http is not None else None

    async def main() -> int:
        stop = asyncio.Event()
        _install_stop(stop)
        gw = Gateway(cfg, broker_url=args.broker, map_file=args.config, map_sha256=loaded.sha256)
        _install_reload(gw)
        control = ControlServer(
            Path(args.control) if args.control else control_path(Path(cfg.journal.path)),
            gw.reload,
        )
        await control.start()
        server = None
        if http is not None:
            from gateway.http import HttpServer

            try:
                server = HttpServer(gw, *http, token=token)
            except OSError as exc:
                raise UserError(f"--http {args.http}: cannot listen: {exc.strerror}") from None
            server.start()
        try:
            return await gw.run(stop)
        finally:
            await control.close()
            if server is not None:
                server.stop()

    return asyncio.run(main())


def _install_reload(gw: Any) -> None:
    """SIGHUP reloads the map (gateway/reload.py); the outcome is logged and is an event."""
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[Any]] = set()

    def hup() -> None:
        task = loop.create_task(gw.reload("signal SIGHUP"), name="reload")
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, hup)


def cmd_reload(args: argparse.Namespace) -> int:
    from gateway.control import ask_reload, control_path

    sock = Path(args.control) if args.control else control_path(_journal_of(args.config))
    try:
        answer = ask_reload(sock, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"no saltgw run answers on {sock} ({exc}); is it running with this config, from "
            "this directory? (--control SOCKET names the socket; kill -HUP PID also reloads)"
        ) from None
    if not answer.get("ok"):
        for line in answer.get("errors", []):
            print(line, file=sys.stderr)
        print(f"saltgw: reload refused; the map that was running still runs ({sock})",
              file=sys.stderr)  # fmt: skip
        return 1

    def names(key: str) -> str:
        return ", ".join(answer.get(key) or []) or "none"

    print(
        f"reloaded {answer.get('file')} (sha256 {answer.get('sha256')}): added {names('added')}; "
        f"removed {names('removed')}; changed {names('changed')}; "
        f"{answer.get('unchanged', 0)} unchanged kept running"
    )
    return 0


def _journal_of(config: str) -> Path:
    """The journal path of a map, read leniently (the file may be the invalid edit whose
    refusal we are about to ask for): its ``journal.path``, else the default."""
    from gateway.config.loader import ConfigError, read_journal_path

    try:
        return read_journal_path(config)
    except ConfigError as exc:
        raise UserError(
            f"{config}: cannot find the gateway's journal in it ({exc.issues[0]}); name the "
            "control socket with --control"
        ) from None


def cmd_health(args: argparse.Namespace) -> int:
    from gateway.http import ask_health

    token = _http_token(args.token_file)
    ok, reasons = ask_health(args.url, timeout=args.timeout, token=token)
    print("ready" if ok else "not ready: " + "; ".join(reasons))
    return 0 if ok else 1


HTTP_TOKEN_ENV = "SALTGW_HTTP_TOKEN"


def _http_token(file: str | None) -> str | None:
    """The /healthz and /metrics bearer token: ``SALTGW_HTTP_TOKEN``, else the owner-only
    file (drivers/secrets.py), else none."""
    from drivers.secrets import secret

    return secret(HTTP_TOKEN_ENV, Path(file) if file else None, "--http-token-file")


def _host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6); a missing host means 127.0.0.1: listening on
    every interface must be asked for (``0.0.0.0:PORT``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"--http expects HOST:PORT (e.g. 127.0.0.1:9108); got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        log.info(
            "--http %s: listening on 127.0.0.1:%s only (write 0.0.0.0:%s for every interface)",
            value,
            port,
            port,
        )
        host = "127.0.0.1"
    return host, int(port)


def cmd_sim(args: argparse.Namespace) -> int:
    from firmware_sim.runner import SimulatorStartError, run_simulators

    cfg = _load(args.config, need=("simulators",))
    if not cfg.simulators:
        raise UserError(f"{args.config}: no simulators: section, nothing to start")

    async def main() -> None:
        stop = asyncio.Event()
        _install_stop(stop)
        await run_simulators(cfg.simulators, stop, ready=_print_ready)

    try:
        asyncio.run(main())
    except SimulatorStartError as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from drivers.camera import CAMERA
    from drivers.camera.limits import ImageLimits
    from gateway.codes import TraceCodeRules
    from gateway.config.extras import needs_message
    from gateway.decode_cmd import decode_files, limits_from_config, rules_from_config

    missing = needs_message("saltgw decode", {CAMERA.extra: CAMERA.requires})
    if missing:  # it decodes as the camera driver does
        raise UserError(missing)

    rules, enterprise, limits = TraceCodeRules(), None, ImageLimits()
    if args.config:
        cfg = _load(args.config)
        rules, enterprise = rules_from_config(cfg)
        limits = limits_from_config(cfg)
    enterprise = args.enterprise or enterprise
    files = [Path(f) for f in args.images]
    return decode_files(files, as_json=args.json, rules=rules, enterprise=enterprise, limits=limits)


def _print_ready(ports: dict[str, int]) -> None:
    for sim_id, port in ports.items():
        print(f"simulator {sim_id} listening on 127.0.0.1:{port}", flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    from importlib.resources import files

    from gateway.config.extras import needs_message

    # the demo's own packages (the live view; the embedded broker unless --broker), then the
    # line's drivers and simulators: every missing one listed at once, before anything starts
    need: dict[str | None, tuple[str, ...]] = {
        "demo": ("rich",) if args.broker else ("rich", "amqtt")
    }
    if args.sparkplug:
        need["sparkplug"] = ("google.protobuf",)
    tools = needs_message("saltgw demo", need)
    config = args.config or str(files("mappings") / "demo-line.yaml")  # = demo_config_path()
    _load(config, need=("devices", "simulators"), also=[tools] if tools else [])
    from gateway.demo import run_demo

    async def main() -> int:
        stop = asyncio.Event()
        _install_stop(stop)
        summary = await run_demo(
            duration=args.duration,
            broker_url=args.broker,
            stop=stop,
            config=Path(args.config) if args.config else None,
            outbox=Path(args.outbox) if args.outbox else None,
            sparkplug=args.sparkplug,
            epcis=args.epcis,
        )
        return int(summary["exit_code"])  # 1 when the gateway stopped by itself

    from firmware_sim.runner import SimulatorStartError

    try:
        return asyncio.run(main())
    except SimulatorStartError as exc:
        raise UserError(str(exc)) from None


# -- parser ------------------------------------------------------------------------------------
#: The verbs this module defines itself; the others come from the modules of OTHER_COMMANDS.
OWN_VERBS = ("run", "reload", "health", "demo", "validate", "schema", "sim", "decode")
#: module -> its function adding its sub-commands to the parser (the verbs in their modules)
OTHER_COMMANDS = (
    ("gateway.bridge.cli", "add_commands"),  # trace, xml validate
    ("gateway.certs_cmd", "add_command"),  # certs
    ("gateway.verify", "add_command"),  # verify
    ("gateway.records.cli", "add_command"),  # import (docs/records.md)
    ("gateway.resolver.cli", "add_command"),  # resolver
    ("gateway.console.cli", "add_commands"),  # console, console-user
)


def _global_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="one line per record"
    )


class _Quiet(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def verb_of(argv: Sequence[str]) -> str | None:
    """The verb ``argv`` names when it is one of :data:`OWN_VERBS`, else None (the global
    options parsed as the full parser parses them; anything odd, e.g. ``--help`` or a bad
    option, is None: the full parser handles and reports it)."""
    pre = _Quiet(add_help=False)
    _global_options(pre)
    try:
        _opts, rest = pre.parse_known_args(argv)
    except ValueError:
        return None
    return rest[0] if rest and rest[0] in OWN_VERBS else None


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The ``saltgw`` parser. With ``verb`` (one of :data:`OWN_VERBS`, e.g. ``run``) the other
    modules' sub-commands are left out: running the gateway does not import the bridge's,
    resolver's, console's, verify's, certs' and import's command modules (docs/performance.md,
    "Gateway memory"); the chosen verb parses, helps and fails exactly as in the full parser."""
    p = argparse.ArgumentParser(
        prog="saltgw",
        description="Industrial IoT gateway for edible-salt packing lines (QB/T 5279-2018).",
    )
    _global_options(p)
    sub = p.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    s = sub.add_parser("run", help="run the gateway until SIGINT/SIGTERM; SIGHUP reloads the map")
    s.add_argument("config", metavar="CONFIG.yaml")
    s.add_argument(
        "--broker",
        metavar="URL",
        help="override the config's broker: mqtt://host:port, or several separated by commas "
        "(failover, in order of preference)",
    )
    s.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve /healthz and Prometheus /metrics (:PORT = 127.0.0.1:PORT)",
    )
    s.add_argument(
        "--http-token-file",
        metavar="FILE",
        help=f"owner-only file with the bearer token /metrics and /healthz's reasons need "
        f"(or env {HTTP_TOKEN_ENV})",
    )
    s.add_argument(
        "--control",
        metavar="SOCKET",
        help="control socket for `saltgw reload` (default: {journal.path}.ctl)",
    )
    s.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "reload",
        help="apply a changed map to a running `saltgw run` (as SIGHUP); exit 1 when refused",
    )
    s.add_argument("config", metavar="CONFIG.yaml", help="the map the gateway runs")
    s.add_argument("--control", metavar="SOCKET", help="its control socket (default: from CONFIG)")
    s.add_argument("--timeout", type=float, default=60.0, metavar="S", help="default 60")
    s.set_defaults(func=cmd_reload)

    s = sub.add_parser("health", help="ask a running gateway's /healthz; exit 0 when ready")
    s.add_argument("url", nargs="?", default="http://127.0.0.1:9108/healthz", metavar="URL")
    s.add_argument("--timeout", type=float, default=5.0, metavar="S", help="default 5")
    s.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"owner-only file with the gateway's bearer token (or env {HTTP_TOKEN_ENV})",
    )
    s.set_defaults(func=cmd_health)

    s = sub.add_parser(
        "demo", help="simulated line + gateway on an embedded broker, with live progress"
    )
    s.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    s.add_argument("--broker", metavar="URL", help="use this broker instead of the embedded one")
    s.add_argument(
        "--config",
        metavar="CONFIG.yaml",
        help="another line (default: demo line); a copy of mappings/demo-line.yaml sets the "
        "line's pace, e.g. the scan-sim simulator's rate_per_min (docs/wholesale.md)",
    )
    s.add_argument(
        "--outbox", metavar="DIR", help="write the platform XML here (default: var/demo-outbox)"
    )
    s.add_argument(
        "--sparkplug",
        action="store_true",
        help="also publish the line's tags as Sparkplug B (spBv1.0/saltgw/…/{gateway id})",
    )
    s.add_argument(
        "--epcis",
        action="store_true",
        help="the demo's bridge writes EPCIS 2.0 documents instead of platform XML (what a "
        "wholesaler imports: docs/wholesale.md)",
    )
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("validate", help="check config / tag-map files; print every error")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("-q", "--quiet", action="store_true", help="print nothing for valid files")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("schema", help="print the JSON Schema of the config format")
    s.add_argument("--markdown", action="store_true", help="the reference docs instead")
    s.add_argument("--events", action="store_true", help="the schemas of the MQTT events instead")
    s.set_defaults(func=cmd_schema)

    s = sub.add_parser("sim", help="run the simulated devices named in a config")
    s.add_argument("config", metavar="CONFIG.yaml")
    s.set_defaults(func=cmd_sim)

    s = sub.add_parser(
        "decode", help="decode QR codes in image files as the camera driver does (commissioning)"
    )
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--enterprise", metavar="CODE", help="codes must carry this enterprise code")
    s.add_argument("--config", metavar="CONFIG.yaml", help="enterprise and code rules of a line")
    s.set_defaults(func=cmd_decode)

    if verb not in OWN_VERBS:
        from importlib import import_module

        for module, adder in OTHER_COMMANDS:
            getattr(import_module(module), adder)(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # every file and directory saltgw creates (journal, trace stores and their SQLite -wal/-shm,
    # outbox documents) is its owner's only, whatever the umask it was started with
    os.umask(0o077)
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(verb_of(argv)).parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    exit_when_orphaned()  # a child of `saltgw demo` ends with it (gateway/orphan.py)
    try:
        return int(args.func(args))
    except (UserError, SecretError) as exc:
        print(f"saltgw: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `saltgw trace --batch B | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush stays quiet
        return 141


if __name__ == "__main__":
    sys.exit(main())
