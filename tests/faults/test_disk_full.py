"""Scenario 4: the journal's disk fills up while ``saltgw run`` works, then space comes back.

Two ways to fill it:

- ``rlimit`` (portable): the gateway's file size limit (``RLIMIT_FSIZE``, set from outside with
  ``prlimit``) drops to one byte, so every write to a file fails with ``EFBIG`` (SIGXFSZ is
  ignored) — SQLite reports a disk I/O error; raised again, space is back.
- ``tmpfs`` (root only, skipped where ``mount`` is not permitted): the journal lives on a small
  tmpfs that a filler file fills to the last byte (``ENOSPC``, SQLite's "database or disk is
  full"); the filler is deleted to give the space back.

Asserted while the disk is full: nothing is reported accepted that is not on disk (the accepted
counter and ``last_seq`` stand still, in memory as on disk), ``/healthz`` is not ready and says
``journal: …``, ``/metrics`` counts journal write errors, the device is not blamed (it stays
online). Once space is back: ready again by itself, events flow, and a subscriber holds every seq
from 1 to the last with one id each.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import Mosquitto
from tests.support.configs import line_config
from tests.support.delivery import (
    assert_gapless_unique,
    journal_integrity,
    journal_last_seq,
    wait_delivered,
    wait_until,
)
from tests.support.gateway_proc import GatewayProc, metric
from tests.support.procs import saltgw, stop
from tests.support.subscriber import Collector

LINE = "salt/v1/8035/daiyue/L1"


class Disk:
    """Where the journal lives, and how it is filled and freed."""

    dir: Path

    def attach(self, gw: GatewayProc) -> None:
        self.gw = gw

    def fill(self) -> None:
        raise NotImplementedError

    def free(self) -> None:
        raise NotImplementedError


class FileSizeLimit(Disk):
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp

    @staticmethod
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a dead process

    def fill(self) -> None:
        _, hard = resource.prlimit(self.gw.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.gw.pid, resource.RLIMIT_FSIZE, (1, hard))

    def free(self) -> None:
        _, hard = resource.prlimit(self.gw.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.gw.pid, resource.RLIMIT_FSIZE, (hard, hard))


class SmallTmpfs(Disk):
    def __init__(self, mount: Path) -> None:
        self.dir = mount
        self.filler = mount / "filler"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _top_up(self) -> None:
        """Keep the filesystem full: take every block that frees up, until told to stop."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while not self._stop.is_set():
                try:
                    os.write(fd, b"\0" * 4096)
                except OSError:
                    self._stop.wait(0.02)
        finally:
            os.close(fd)

    def fill(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._top_up, daemon=True)
        self._thread.start()

    def free(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.filler.unlink(missing_ok=True)


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "saltgw-fault", str(where)],
        capture_output=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


@pytest.fixture(params=["rlimit", "tmpfs"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Disk]:
    if request.param == "rlimit":
        yield FileSizeLimit(tmp_path)
        return
    with _tmpfs(tmp_path / "disk", "16m") as mount:
        tmpfs = SmallTmpfs(mount)
        try:
            yield tmpfs
        finally:
            tmpfs.free()


def test_disk_full_then_space_back(tmp_path: Path, mosquitto: Mosquitto, disk: Disk) -> None:
    journal = disk.dir / "journal.db"
    cfg = line_config(tmp_path, mosquitto.port, rate_per_min=1200, journal={"path": str(journal)})
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    preexec = FileSizeLimit.preexec if isinstance(disk, FileSizeLimit) else None
    sim = saltgw("sim", str(cfg), log=tmp_path / "sim.log")
    gw = GatewayProc(cfg, tmp_path / "saltgw.log", preexec=preexec).start()
    disk.attach(gw)
    try:
        wait_until(lambda: gw.healthz()[0] == 200, 60, "the gateway ready")
        wait_until(lambda: journal_last_seq(journal) >= 20, 30, "events accepted")

        disk.fill()
        wait_until(lambda: gw.healthz()[0] == 503, 30, "healthz not ready on a full disk")
        _, body = gw.healthz()
        assert any(r.startswith("journal:") for r in body["reasons"]), body
        # nothing more is accepted, in memory or on disk, while writes fail
        m1 = gw.metrics()
        on_disk = journal_last_seq(journal)
        wait_until(lambda: metric(gw.metrics(), "saltgw_journal_write_errors") >= 3, 30, "errors")
        m2 = gw.metrics()
        assert metric(m2, "saltgw_events_accepted") == metric(m1, "saltgw_events_accepted")
        assert metric(m2, "saltgw_journal_last_seq") == on_disk == journal_last_seq(journal)
        assert metric(m2, "saltgw_device_state", '{device="cw1",state="online"}') == 1
        assert not [r for r in body["reasons"] if r.startswith("device")], body
        wait_delivered(sub.events, on_disk, 30)  # what was accepted before still goes out
        assert max(e["seq"] for e in sub.events()) == on_disk

        disk.free()
        wait_until(lambda: gw.healthz()[0] == 200, 60, "ready again once space is back")
        wait_until(lambda: journal_last_seq(journal) > on_disk + 20, 30, "events accepted again")
        assert gw.stop() == 0, gw.log_text()[-3000:]
        last = journal_last_seq(journal)
        events = wait_delivered(sub.events, last, 60)
    finally:
        if gw.running():
            gw.kill9()
        stop(sim)
        sub.stop()

    assert_gapless_unique(events, last)
    assert journal_integrity(journal) == "ok"
    text = gw.log_text()
    assert "journal" in text and "ERROR" in text
    assert "Traceback" not in text, text[-4000:]


def test_stop_while_disk_full_then_restart(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """SIGTERM while nothing can be written: the gateway stops in bounded time (events waiting
    for the disk are not accepted, so nothing is lost), and the next start carries on."""
    disk = FileSizeLimit(tmp_path)
    journal = tmp_path / "journal.db"
    cfg = line_config(tmp_path, mosquitto.port, rate_per_min=1200)
    sub = Collector(mosquitto.port, topic=f"{LINE}/#").start()
    sim = saltgw("sim", str(cfg), log=tmp_path / "sim.log")
    gw = GatewayProc(cfg, tmp_path / "saltgw.log", preexec=FileSizeLimit.preexec).start()
    disk.attach(gw)
    try:
        wait_until(lambda: gw.healthz()[0] == 200, 60, "the gateway ready")
        wait_until(lambda: journal_last_seq(journal) >= 20, 30, "events accepted")
        disk.fill()
        wait_until(
            lambda: any(r.startswith("journal:") for r in gw.healthz()[1].get("reasons", [])),
            30,
            "healthz to name the journal",
        )
        on_disk = journal_last_seq(journal)
        t0 = time.monotonic()
        assert gw.stop(timeout=60) == 0, gw.log_text()[-3000:]
        stopped_in = time.monotonic() - t0
        assert journal_last_seq(journal) == on_disk  # nothing half-accepted at the close
        gw = GatewayProc(cfg, tmp_path / "saltgw.log").start()  # space is back (no limit)
        wait_until(lambda: gw.healthz()[0] == 200, 60, "ready after the restart")
        wait_until(lambda: journal_last_seq(journal) > on_disk + 20, 30, "events accepted again")
        assert gw.stop() == 0
        last = journal_last_seq(journal)
        events = wait_delivered(sub.events, last, 60)
    finally:
        if gw.running():
            gw.kill9()
        stop(sim)
        sub.stop()
    assert stopped_in < 30, f"stopping with a full disk took {stopped_in:.1f} s"
    assert_gapless_unique(events, last)
    assert "Traceback" not in gw.log_text()
