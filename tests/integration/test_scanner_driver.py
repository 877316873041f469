"""The scanner driver against the scanner simulator over real links: TCP client, TCP server,
serial over socket:// and a real pseudo-terminal; garbage, no-reads and reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from drivers.base import DeviceOffline, Reading
from drivers.scanner import ScannerDeviceConfig, ScannerDriver
from firmware_sim.scan_line import ScanLineSim, ScanLineSimConfig
from tests.support.net import free_port

pytestmark = pytest.mark.integration


def _sim(**kw: Any) -> ScanLineSim:
    cfg = {"id": "sim", "kind": "scan_line", "port": 0, "rate_per_min": 1200, "seed": 3, **kw}
    return ScanLineSim(ScanLineSimConfig(**cfg))


def _driver(connection: dict[str, Any], **kw: Any) -> ScannerDriver:
    cfg = {"id": "scan1", "driver": "scanner", "connection": connection, **kw}
    return ScannerDriver(ScannerDeviceConfig(**cfg))


async def _read(drv: ScannerDriver, n: int, secs: float = 10) -> list[Reading]:
    out = []
    async with asyncio.timeout(secs):
        while len(out) < n:
            out.append(await drv.read())
    return out


async def _connect(drv: ScannerDriver, secs: float = 5) -> None:
    async with asyncio.timeout(secs):
        while True:
            try:
                await drv.connect()
                return
            except DeviceOffline:
                await asyncio.sleep(0.05)


def _codes_match_truth(readings: list[Reading], sim: ScanLineSim) -> None:
    sent = [b.sent for b in sim.bags]
    got = [r.values["codes"] if not r.values["noread"] else "NoRead" for r in readings]
    # the readings are a contiguous run of what the simulator sent
    start = sent.index(got[0])
    assert got == sent[start : start + len(got)]


@pytest.mark.parametrize("framing", ["crlf", "cr", "lf", "stx_etx"])
def test_tcp_client_reads_every_frame_with_each_framing(framing: str) -> None:
    async def main() -> None:
        sim = _sim(framing=framing, noread_ratio=0.2)
        await sim.start()
        drv = _driver(
            {"type": "tcp_client", "host": "127.0.0.1", "port": sim.port}, framing=framing
        )
        try:
            await _connect(drv)
            readings = await _read(drv, 15)
        finally:
            await drv.close()
            await sim.stop()
        assert all(not r.errors for r in readings)
        assert any(r.values["noread"] for r in readings)
        _codes_match_truth(readings, sim)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["binary", "overlong", "framing"])
def test_garbage_is_counted_and_the_next_code_still_reads(kind: str) -> None:
    async def main() -> None:
        sim = _sim()
        await sim.start()
        drv = _driver({"type": "tcp_client", "host": "127.0.0.1", "port": sim.port})
        try:
            await _connect(drv)
            await _read(drv, 2)
            sim.inject_garbage(kind)  # type: ignore[arg-type]
            readings = await _read(drv, 4)
        finally:
            await drv.close()
            await sim.stop()
        bad = [i for i, r in enumerate(readings) if r.errors]
        assert len(bad) == 1, readings
        i = bad[0]
        assert "frame" in readings[i].errors and readings[i].values["codes"] == ""
        assert readings[i].values["rejected"] == 1 and drv.stats.rejected == 1
        good = readings[i + 1]
        assert not good.errors and good.values["codes"].startswith("https://trace.example.cn/q/")
        assert good.values["codes"] in {b.sent for b in sim.bags}

    asyncio.run(main())


def test_tcp_server_mode_the_scanner_connects_to_us() -> None:
    async def main() -> None:
        port = free_port()
        drv = _driver(
            {
                "type": "tcp_server",
                "listen_host": "127.0.0.1",
                "port": port,
                "accept_timeout_ms": 5000,
            }
        )
        sim = _sim(link="tcp_client", port=port)
        await sim.start()
        try:
            await drv.connect()
            readings = await _read(drv, 10)
            _codes_match_truth(readings, sim)
        finally:
            await drv.close()
            await sim.stop()

    asyncio.run(main())


def test_tcp_server_mode_times_out_as_offline_when_nobody_connects() -> None:
    async def main() -> None:
        drv = _driver(
            {
                "type": "tcp_server",
                "listen_host": "127.0.0.1",
                "port": free_port(),
                "accept_timeout_ms": 200,
            }
        )
        try:
            with pytest.raises(DeviceOffline, match="no scanner connected"):
                await drv.connect()
        finally:
            await drv.close()

    asyncio.run(main())


def test_serial_over_socket_url() -> None:
    async def main() -> None:
        sim = _sim(framing="cr")
        await sim.start()
        drv = _driver({"type": "serial", "port": f"socket://127.0.0.1:{sim.port}"}, framing="cr")
        try:
            await _connect(drv)
            readings = await _read(drv, 10)
            _codes_match_truth(readings, sim)
        finally:
            await drv.close()
            await sim.stop()

    asyncio.run(main())


def test_serial_on_a_real_pseudo_terminal(tmp_path: Path) -> None:
    async def main() -> None:
        link = tmp_path / "scan1.tty"
        sim = _sim(link="pty", pty_link=str(link), framing="stx_etx", start_delay_s=0.3)
        await sim.start()
        drv = _driver({"type": "serial", "port": str(link), "baudrate": 115200}, framing="stx_etx")
        try:
            await _connect(drv)
            readings = await _read(drv, 10)
            _codes_match_truth(readings, sim)
        finally:
            await drv.close()
            await sim.stop()

    asyncio.run(main())


def test_link_cut_is_offline_and_reconnect_resumes() -> None:
    async def main() -> None:
        sim = _sim()
        await sim.start()
        drv = _driver({"type": "tcp_client", "host": "127.0.0.1", "port": sim.port})
        try:
            await _connect(drv)
            await _read(drv, 3)
            await sim.drop()
            with pytest.raises(DeviceOffline, match="closed by the scanner"):
                await _read(drv, 100)
            await _connect(drv)
            readings = await _read(drv, 5)
            _codes_match_truth(readings, sim)
        finally:
            await drv.close()
            await sim.stop()

    asyncio.run(main())


def test_refused_connection_is_offline() -> None:
    async def main() -> None:
        drv = _driver({"type": "tcp_client", "host": "127.0.0.1", "port": free_port()})
        with pytest.raises(DeviceOffline, match=r"cannot connect to scanner tcp 127\.0\.0\.1"):
            await drv.connect()

    asyncio.run(main())
