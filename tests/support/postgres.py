"""A throwaway PostgreSQL cluster from Debian's server binaries (package ``postgresql``), run as
the test user: ``initdb`` into a temporary folder, ``postgres`` listening on 127.0.0.1 at a free
port with its unix socket in that folder, stopped (``pg_ctl stop -m immediate``) at the end.

- ``pg_server`` (session): the running cluster; the trace store's schema is migrated once into
  a template database (``saltgw bridge migrate``'s code: alembic).
- ``pg_store`` (function): a fresh ``postgresql://`` URL per test, created from that template
  (tens of milliseconds).

As root (initdb refuses root), the cluster runs as Debian's ``postgres`` user (else ``nobody``)
in a folder of its own under the system's temporary directory.

Outside CI, both skip with the reason when the binaries or psycopg are missing; in CI a skip
fails the run (scripts/setup.sh installs ``postgresql``). The cluster runs with ``fsync=off``:
it is thrown away, and the tests are about the store's logic, not the disk.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.net import free_port

__all__ = ["PgServer", "pg_bindir", "pg_server", "pg_store", "running_postgres"]

TEMPLATE = "saltgw_template"
_names = itertools.count(1)


def pg_bindir() -> Path | None:
    """The folder of Debian's ``initdb``/``postgres`` (newest version), or $SALTGW_PG_BIN."""
    given = os.environ.get("SALTGW_PG_BIN")
    if given:
        return Path(given) if (Path(given) / "initdb").exists() else None
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when this process is root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    raise RuntimeError("running as root and there is no postgres or nobody user to run it as")


@dataclass
class PgServer:
    bindir: Path
    data: Path
    port: int
    user: str
    owner: tuple[int, int] | None

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """A fresh database with the migrated schema; its URL."""
        name = f"store_{os.getpid()}_{next(_names)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate", "-w"],
            capture_output=True,
            timeout=30,
            check=False,
            user=_uid(self.owner),
            group=_gid(self.owner),
        )


def _uid(owner: tuple[int, int] | None) -> int | None:
    return None if owner is None else owner[0]


def _gid(owner: tuple[int, int] | None) -> int | None:
    return None if owner is None else owner[1]


def _start(base: Path, bindir: Path, owner: tuple[int, int] | None) -> PgServer:
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if owner is not None:
        for path in (base, sock):
            os.chown(path, *owner)
    user = "saltgw"
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8",
         "--no-sync", "--locale=C"],
        check=True, capture_output=True, timeout=120, user=_uid(owner), group=_gid(owner),
    )  # fmt: skip
    for _ in range(5):  # a free port can be taken before postgres binds it: pick another
        port = free_port()
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40 "
            "-c shared_buffers=16MB"
        )
        proc = subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"),
             "-o", opts, "-w", "-t", "30", "start"],
            capture_output=True, text=True, timeout=60, check=False,
            user=_uid(owner), group=_gid(owner),
        )  # fmt: skip
        if proc.returncode == 0:
            return PgServer(bindir, data, port, user, owner)
        time.sleep(0.2)
    log = (base / "server.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"PostgreSQL did not start: {proc.stderr}\n{log}")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not found (Debian package postgresql: "
            "/usr/lib/postgresql/*/bin/initdb); scripts/setup.sh dev apt installs it"
        )
    try:
        import alembic  # noqa: F401
        import psycopg  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the postgres extra is not installed ({exc}): pip install -e '.[postgres]'")
    with running_postgres(tmp_path_factory.mktemp("pg"), bindir) as server:
        yield server


@contextmanager
def running_postgres(tmp: Path, bindir: Path) -> Iterator[PgServer]:
    """A throwaway cluster with the migrated template (:meth:`PgServer.new_database`), in
    ``tmp`` (as root: in a folder of its own the server's user can reach), stopped at the end."""
    from gateway.bridge.migrations import migrate

    owner = _run_as()
    # as root, a folder the server's user can reach (pytest's are root's only)
    base = Path(tempfile.mkdtemp(prefix="saltgw-pg-")) if owner else tmp
    try:
        server = _start(base, bindir, owner)
        try:
            server.admin(f"CREATE DATABASE {TEMPLATE}")
            migrate(server.url(TEMPLATE))
            yield server
        finally:
            server.stop()
    finally:
        if owner:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_store(pg_server: PgServer) -> str:
    """A ``postgresql://`` URL of a fresh, migrated trace store."""
    return pg_server.new_database()
