"""The camera driver on a watched folder fed by the simulator's camera, and on a video file."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.base import DeviceOffline, Reading
from drivers.camera import CameraDeviceConfig
from drivers.camera.driver import CameraDriver
from firmware_sim.qrframes import Distortion, make_frame
from firmware_sim.scan_endpoints import FolderEndpoint

pytestmark = pytest.mark.integration


def _driver(source: dict[str, object], **kw: object) -> CameraDriver:
    return CameraDriver(CameraDeviceConfig(id="cam1", driver="camera", source=source, **kw))


async def _read(drv: CameraDriver, n: int, secs: float = 20) -> list[Reading]:
    out = []
    async with asyncio.timeout(secs):
        while len(out) < n:
            out.append(await drv.read())
    return out


def test_folder_images_are_read_in_order_moved_and_garbage_counted(tmp_path: Path) -> None:
    folder = tmp_path / "cam"

    async def main() -> None:
        cam = FolderEndpoint(folder, random.Random(4))
        await cam.start()
        drv = _driver({"type": "folder", "path": str(folder), "poll_ms": 20, "settle_ms": 0})
        await drv.connect()
        try:
            codes = [f"https://trace.example.cn/q?c=8035CAM{i:07d}" for i in range(3)]
            await cam.write_frame(codes[0])
            first = await _read(drv, 1)
            await cam.write_frame(None)  # label not in view
            (folder / "zz-broken.png").write_bytes(b"not a png")
            await cam.write_frame(codes[1])
            rest = await _read(drv, 3)
        finally:
            await drv.close()
        readings = first + rest
        assert readings[0].values["codes"] == codes[0] and not readings[0].values["noread"]
        assert readings[1].values["noread"] is True and readings[1].values["codes"] == ""
        broken = next(r for r in readings if r.errors)
        assert "cannot read image 'zz-broken.png'" in broken.errors["frame"]
        assert broken.values["rejected"] == 1
        assert codes[1] in [r.values["codes"] for r in readings]
        assert sorted(p.name for p in (folder / "done").iterdir())[:3] == [
            "frame-000001.png",
            "frame-000002.png",
            "frame-000003.png",
        ]
        assert not list(folder.glob("*.png"))

    asyncio.run(main())


def test_missing_folder_is_offline(tmp_path: Path) -> None:
    async def main() -> None:
        drv = _driver({"type": "folder", "path": str(tmp_path / "nope")})
        with pytest.raises(DeviceOffline, match="does not exist"):
            await drv.connect()

    asyncio.run(main())


def test_video_stream_reports_each_code_once_while_in_view(tmp_path: Path) -> None:
    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (1280, 720), False)
    assert writer.isOpened()
    rng = random.Random(5)
    codes = [
        "https://trace.example.cn/q?c=8035VID0000001",
        "https://trace.example.cn/q?c=8035VID0000002",
    ]
    blank = np.full((720, 1280), 170, np.uint8)
    for code in codes:  # each bag in view for 5 frames, then a gap
        frame, _ = make_frame(code, rng, Distortion(angle_deg=18, module_px=7, noise=3))
        for _ in range(5):
            writer.write(frame)
        for _ in range(3):
            writer.write(blank)
    writer.release()

    async def main() -> list[Reading]:
        drv = _driver(
            {"type": "stream", "url": str(video)}, frame_interval_ms=0, repeat_window_ms=60_000
        )
        await drv.connect()
        out: list[Reading] = []
        try:
            while True:
                try:
                    out.append(await asyncio.wait_for(drv.read(), 20))
                except DeviceOffline as exc:  # the file ended
                    ended = str(exc)
                    break
        finally:
            await drv.close()
        assert "delivered no frame" in ended
        return out

    readings = asyncio.run(main())
    assert [r.values["codes"] for r in readings] == codes
