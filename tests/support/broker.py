"""A real mosquitto broker on a free loopback port, restartable (with persistence) for
outage tests; optionally with an ACL file, reloaded on :meth:`Mosquitto.reload` (SIGHUP)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.net import free_port, wait_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists()


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_conf: str = "",
        anonymous: bool = True,
        acl_file: Path | None = None,
    ) -> None:
        """``extra_conf`` is appended: TLS options there apply to the one listener.
        ``acl_file``: mosquitto's ACL (``topic [read|write|readwrite|deny] TOPIC`` lines; those
        before any ``user`` line apply to anonymous clients); edit it, then :meth:`reload`."""
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        workdir.mkdir(parents=True, exist_ok=True)
        # as root, mosquitto drops to user 'mosquitto', which cannot write the test's
        # private directory: persistence (sessions across restarts) would silently fail
        as_root = "user root\n" if os.geteuid() == 0 else ""
        acl = f"acl_file {acl_file}\n" if acl_file is not None else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            f"allow_anonymous {'true' if anonymous else 'false'}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            f"{as_root}{acl}{extra_conf}"
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf, cwd=self.workdir
            )
        wait_port(self.port)

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its configuration and ACL file again (for the clients
        connected, too); it says nothing when done: wait for what the change allows."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: mosquitto saves its persistent sessions)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is None:
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None


@contextmanager
def mosquitto_nodes(tmp: Path, count: int = 2) -> Iterator[list[Mosquitto]]:
    """``count`` independent mosquitto nodes (broker failover tests); each killed at the end,
    a stopped (SIGSTOP: hung) one resumed first."""
    out = [Mosquitto(tmp / f"node-{i}") for i in range(count)]
    try:
        for n in out:
            n.start()
        yield out
    finally:
        for n in out:
            if n.proc is not None:
                os.kill(n.proc.pid, signal.SIGCONT)
            n.kill()
