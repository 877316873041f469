"""The camera's decode worker (drivers/camera/worker.py) is a process of its own, supervised by
the driver: the gateway never loads OpenCV; a worker that dies or hangs costs at most the image
it was decoding (reported as garbage, never a stop), and the next image is read by a new one."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from drivers.base import Reading
from drivers.camera import CameraDeviceConfig
from drivers.camera.client import DecodeWorker, WorkerDied, WorkerError
from drivers.camera.driver import CameraDriver
from firmware_sim.scan_endpoints import FolderEndpoint

pytestmark = pytest.mark.integration

CODES = [f"https://trace.example.cn/q?c=8035WRK{i:07d}" for i in range(4)]


def _folder_driver(folder: Path) -> CameraDriver:
    cfg = CameraDeviceConfig(
        id="cam1",
        driver="camera",
        source={"type": "folder", "path": str(folder), "poll_ms": 20, "settle_ms": 0},
    )
    return CameraDriver(cfg)


async def _until(cond: object, secs: float = 20) -> None:
    async with asyncio.timeout(secs):
        while not cond():  # type: ignore[operator]  # noqa: ASYNC110 (a counter, no event)
            await asyncio.sleep(0.01)


def _pid(drv: CameraDriver) -> int:
    pid = drv.worker.pid
    assert pid is not None
    return pid


def test_a_worker_killed_between_images_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    folder = tmp_path / "cam"

    async def main() -> list[Reading]:
        cam = FolderEndpoint(folder, random.Random(6))
        await cam.start()
        drv = _folder_driver(folder)
        await drv.connect()
        try:
            await cam.write_frame(CODES[0])
            first = await asyncio.wait_for(drv.read(), 30)
            pid = _pid(drv)
            os.kill(pid, signal.SIGKILL)
            await cam.write_frame(CODES[1])
            second = await asyncio.wait_for(drv.read(), 60)
            assert drv.worker.starts == 2 and _pid(drv) != pid
        finally:
            await drv.close()
        assert drv.worker.pid is None  # close() ends the worker
        return [first, second]

    readings = asyncio.run(main())
    assert [r.values["codes"] for r in readings] == CODES[:2]
    assert all(not r.errors for r in readings)


def test_a_worker_dying_or_hanging_on_an_image_makes_that_image_garbage_only(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "cam"

    async def main() -> list[Reading]:
        cam = FolderEndpoint(folder, random.Random(7))
        await cam.start()
        drv = _folder_driver(folder)
        drv.decode_deadline_secs = 5.0  # a loaded CI machine decodes a frame well inside it
        await drv.connect()
        out: list[Reading] = []
        try:
            # dies while decoding: stopped, so the request is certainly written, then killed
            pid = _pid(drv)
            os.kill(pid, signal.SIGSTOP)
            sent = drv.worker.requests
            await cam.write_frame(CODES[0])
            reading = asyncio.create_task(drv.read())
            await _until(lambda: drv.worker.requests == sent + 1)
            os.kill(pid, signal.SIGKILL)
            out.append(await asyncio.wait_for(reading, 30))
            await cam.write_frame(CODES[1])
            out.append(await asyncio.wait_for(drv.read(), 60))
            # hangs: no answer within the deadline, killed, replaced
            os.kill(_pid(drv), signal.SIGSTOP)
            await cam.write_frame(CODES[2])
            out.append(await asyncio.wait_for(drv.read(), 30))
            await cam.write_frame(CODES[3])
            out.append(await asyncio.wait_for(drv.read(), 60))
            assert drv.worker.starts == 3
        finally:
            await drv.close()
        return out

    died, after_death, hung, after_hang = asyncio.run(main())
    # its own status, not asyncio's 255 for one reaped by the kill's poll (client._kill grace)
    assert died.errors == {
        "frame": "cannot read image 'frame-000001.png': the decode worker killed by signal 9"
    }
    assert hung.errors == {
        "frame": "cannot read image 'frame-000003.png': the decode worker no answer within "
        "5 s: worker stopped"
    }
    assert (died.values["rejected"], hung.values["rejected"]) == (1, 2)
    assert after_death.values["codes"] == CODES[1] and not after_death.errors
    assert after_hang.values["codes"] == CODES[3] and not after_hang.errors
    assert [sorted(p.name for p in (folder / "done").iterdir())] == [
        [f"frame-{i:06d}.png" for i in range(1, 5)]
    ]


def test_the_worker_answers_errors_and_goes_on_and_its_log_reaches_the_gateway(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        worker = DecodeWorker("cam9", ["no_such_strategy"])
        with pytest.raises(WorkerError, match="unknown decode strategies"):
            await worker.ensure_started()
        assert worker.pid is None  # a worker that refuses its settings is not kept
        worker.strategies = None
        await worker.ensure_started()
        try:
            with pytest.raises(WorkerError, match="unknown op 'frobnicate'"):
                await worker.request({"op": "frobnicate"})
            reply = await worker.request({"op": "decode", "budget_ms": 100}, b"not an image")
            assert reply["image"] is False
            assert worker.starts == 2  # the errors above did not cost a worker
        finally:
            await worker.stop()

    with caplog.at_level("WARNING", logger="drivers.camera.client"):
        asyncio.run(main())
    relayed = [r.getMessage() for r in caplog.records if r.name == "drivers.camera.client"]
    assert any(
        m.startswith("camera cam9 decode worker: drivers.camera.worker: frobnicate failed")
        for m in relayed
    ), relayed


def test_a_worker_that_cannot_start_is_worker_died(tmp_path: Path) -> None:
    """No OpenCV where the worker runs: it exits at once; the error says how."""
    shim = tmp_path / "no-cv2"
    shim.mkdir()
    (shim / "cv2.py").write_text("raise ImportError('No module named cv2 (test shim)')\n")

    async def main() -> str:
        worker = DecodeWorker("cam8", None, start_secs=60)
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(shim)
        try:
            with pytest.raises(WorkerDied) as err:
                await worker.ensure_started()
        finally:
            if old is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = old
        return str(err.value)

    assert asyncio.run(main()) == "exited with status 1"
    assert sys.executable  # the worker runs on the gateway's own interpreter
