"""``saltgw certs``: make the gateway's OPC UA application instance certificate and key
(gateway/certs.py), where the config's OPC UA devices expect them (docs/operations.md,
"The gateway's OPC UA certificate")."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_command"]

DEFAULT_DAYS = 730


def add_command(sub: Any) -> None:
    s = sub.add_parser(
        "certs",
        help="make the gateway's OPC UA application certificate (DER) and key (PEM, 0600)",
    )
    s.add_argument(
        "--config",
        metavar="CONFIG.yaml",
        help="take the paths and application URI from the config's OPC UA devices",
    )
    s.add_argument("--device", metavar="ID", help="with --config: this OPC UA device's paths")
    s.add_argument("--cert", metavar="FILE", help="certificate to write (DER)")
    s.add_argument("--key", metavar="FILE", help="private key to write (PEM, mode 0600)")
    s.add_argument(
        "--uri",
        metavar="URI",
        help="application URI (default: the device's application_uri, else "
        "urn:saltgw:{gateway id}; without --config urn:saltgw:{host name})",
    )
    s.add_argument("--name", metavar="CN", help="common name (default: saltgw {gateway id})")
    s.add_argument(
        "--host",
        action="append",
        metavar="HOST",
        help="a DNS name or IP address for the SubjectAltName (repeatable; default: this "
        "host's name, localhost and 127.0.0.1)",
    )
    s.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"validity (default {DEFAULT_DAYS})",
    )
    s.add_argument("--force", action="store_true", help="replace existing files")
    s.set_defaults(func=cmd_certs)


def _from_config(args: argparse.Namespace) -> tuple[Path | None, Path | None, str | None, str]:
    """(cert, key, uri, gateway id) of the config's secure OPC UA devices (one pair)."""
    from gateway.cli import UserError, _load

    cfg = _load(args.config)
    found: dict[tuple[Path, Path, str | None], list[str]] = {}
    for dev in cfg.devices:
        security = getattr(dev, "security", None)
        cert, key = getattr(security, "certificate", None), getattr(security, "private_key", None)
        if dev.driver != "opcua" or cert is None or key is None:
            continue
        if args.device is None or dev.id == args.device:
            found.setdefault((cert, key, getattr(dev, "application_uri", None)), []).append(dev.id)
    if not found:
        which = f"device {args.device!r}" if args.device else "no OPC UA device"
        raise UserError(
            f"{args.config}: {which} with a secure channel (security: certificate, "
            "private_key); name the files with --cert and --key"
        )
    if len(found) > 1 and (args.cert is None or args.key is None):
        listed = "; ".join(f"{', '.join(ids)}: {c}, {k}" for (c, k, _u), ids in found.items())
        raise UserError(f"{args.config}: OPC UA devices name different certificates ({listed}); "
                        "pick one with --device")  # fmt: skip
    (cert, key, uri), _ids = next(iter(found.items()))
    return cert, key, uri, cfg.gateway.id


def cmd_certs(args: argparse.Namespace) -> int:
    from gateway.cli import UserError
    from gateway.config.extras import needs_message

    missing = needs_message("saltgw certs", {"opcua": ("asyncua", "cryptography")})
    if missing:
        raise UserError(missing)
    if args.days < 1:
        raise UserError(f"--days must be at least 1; got {args.days}")
    cert = Path(args.cert) if args.cert else None
    key = Path(args.key) if args.key else None
    uri, gateway_id = None, None
    if args.config:
        c_cert, c_key, uri, gateway_id = _from_config(args)
        cert, key = cert or c_cert, key or c_key
    if cert is None or key is None:
        raise UserError("name the files: --cert FILE --key FILE (or --config CONFIG.yaml)")
    host = socket.gethostname()
    uri = args.uri or uri or f"urn:saltgw:{gateway_id or host}"
    name = args.name or f"saltgw {gateway_id or host}"
    hosts = tuple(args.host) if args.host else (host, "localhost", "127.0.0.1")

    from gateway.certs import write_certificate

    try:
        pair = write_certificate(
            cert, key, uri, name, server=False, hosts=hosts, days=args.days, force=args.force
        )
    except FileExistsError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write {exc.filename}: {exc.strerror}") from None
    out = sys.stdout
    print(f"certificate {cert} (DER), key {key} (PEM, mode 0600)", file=out)
    print(f"application URI {uri}; common name {name!r}; hosts {', '.join(hosts)}", file=out)
    print(
        f"valid {pair.not_before:%Y-%m-%d %H:%M} to {pair.not_after:%Y-%m-%d %H:%M} UTC", file=out
    )
    print(f"SHA-256 fingerprint {pair.fingerprint}", file=out)
    print("add the certificate to the PLC's trusted client certificates", file=out)
    return 0
