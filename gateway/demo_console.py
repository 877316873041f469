"""The web console of ``saltgw demo`` (docs/console.md): ``saltgw console`` in its own process,
as deployed, on a free loopback port, following the demo's broker and reading the demo bridge's
trace store. Its ``console: http://HOST:PORT/`` line is passed on.

Sign-in: a users file in the demo's working folder (``demo-console-users.json`` unless the
config's ``console:`` names one) holding one user per role, ``operator``, ``quality`` and
``admin``, each with a password generated afresh at every start and printed once on the
``console sign-in:`` line (the file keeps only scrypt hashes; no password is in the repository).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from gateway.config.models import ConfigBase
from gateway.console.config import GatewayConsoleSection
from gateway.console.users import Role, UsersFile
from gateway.demo_child import served_child, web_extra_missing

__all__ = ["DEMO_USERS", "demo_console"]

log = logging.getLogger(__name__)

DEMO_USERS: tuple[Role, ...] = ("operator", "quality", "admin")  # user name = role


def _write_config(cfg: ConfigBase, broker_url: str, workdir: Path) -> Path:
    """The console's settings of the demo's config (its ``console:`` section, else the
    defaults), on a free port, following ``broker_url``; as a console file."""
    section = cfg.console or GatewayConsoleSection(users=workdir / "demo-console-users.json")
    console = section.resolve(cfg).model_copy(
        update={"listen": "127.0.0.1:0", "broker": broker_url}
    )
    body = console.model_dump(mode="json")
    for key in ("users", "store", "chain_key_file"):  # the child may run elsewhere
        if body.get(key):
            body[key] = str(Path(body[key]).resolve())
    path = workdir / "demo-console.yaml"
    path.write_text(
        json.dumps({"console": body}, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return path


def _demo_users(path: Path) -> dict[str, str]:
    """One user per role with a fresh password each; name → password."""
    users = UsersFile(path)
    made: dict[str, str] = {}
    for role in DEMO_USERS:
        made[role] = secrets.token_urlsafe(9)
        users.set(role, role, made[role])
    return made


@contextmanager
def demo_console(
    cfg: ConfigBase, broker_url: str, workdir: Path, out: TextIO
) -> Iterator[str | None]:
    """Run ``saltgw console`` for the demo; yields its URL (``http://HOST:PORT/``), or None
    when it could not start (said on ``out``: the demo goes on without it)."""
    if web_extra_missing():
        print("console: not started (pip install 'saltgw[resolver]')", file=out, flush=True)
        yield None
        return
    workdir.mkdir(parents=True, exist_ok=True)
    config = _write_config(cfg, broker_url, workdir)
    users_file = Path(json.loads(config.read_text(encoding="utf-8"))["console"]["users"])
    passwords = _demo_users(users_file)
    with served_child("console", config, out) as url:
        if url is not None:
            pairs = ", ".join(f"{name} / {pw}" for name, pw in passwords.items())
            print(f"console sign-in (new each run): {pairs}", file=out, flush=True)
        yield url
