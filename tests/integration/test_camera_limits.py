"""Issue 15: camera images are checked against ``max_image_bytes`` / ``max_image_pixels``
before they are decoded. Old main handed every file to ``cv2.imdecode``: a 243 KiB PNG
declaring 16,000 × 16,000 pixels was decoded into 256 MB."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import CameraDeviceConfig
from drivers.camera.driver import CameraDriver
from drivers.camera.limits import ImageLimits, ImageRefused, declared_size
from tests.support.procs import ROOT

pytestmark = pytest.mark.integration


def giant_png(path: Path, width: int = 12_000, height: int = 12_000) -> None:
    """A valid greyscale PNG of ``width`` × ``height`` black pixels: a few hundred KiB on
    disk, width × height bytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_declared_sizes_are_read_from_the_headers() -> None:
    img = np.zeros((123, 456), np.uint8)
    for ext in (".png", ".jpg", ".bmp"):
        ok, data = cv2.imencode(ext, img)
        assert ok and declared_size(data.tobytes()) == (456, 123), ext
    assert declared_size(b"GIF89a\x01\x00\x01\x00") is None
    assert declared_size(b"\x89PNG\r\n\x1a\n") is None  # cut short
    with pytest.raises(ImageRefused, match="not a PNG, JPEG or BMP"):
        ImageLimits().check(b"GIF89a" + bytes(100))
    with pytest.raises(ImageRefused, match="more than max_image_bytes"):
        ImageLimits(max_bytes=1024).check(bytes(2000))


def test_the_driver_refuses_a_giant_png_before_decoding_it(tmp_path: Path) -> None:
    folder = tmp_path / "cam"
    folder.mkdir()
    giant_png(folder / "a-giant.png")
    assert (folder / "a-giant.png").stat().st_size < 400_000
    _, small = cv2.imencode(".png", np.full((200, 300), 200, np.uint8))
    (folder / "b-small.png").write_bytes(small.tobytes())
    cfg = CameraDeviceConfig(
        id="cam1",
        driver="camera",
        source={"type": "folder", "path": str(folder), "poll_ms": 20, "settle_ms": 0},
    )
    drv = CameraDriver(cfg)

    async def main() -> list:  # type: ignore[type-arg]
        await drv.connect()
        try:
            async with asyncio.timeout(20):
                return [await drv.read(), await drv.read()]
        finally:
            await drv.close()

    readings = asyncio.run(main())
    by_name = {r.values["raw"]: r for r in readings}
    refused = by_name["a-giant.png"]
    assert refused.errors["frame"] == (
        "cannot read image 'a-giant.png': declares 12,000 × 12,000 = 144,000,000 pixels, more "
        "than max_image_pixels (40,000,000): refused before decoding"
    )
    assert refused.values["rejected"] == 1
    assert by_name["b-small.png"].values["noread"] is True  # the next image is read as usual
    assert sorted(p.name for p in (folder / "done").iterdir()) == ["a-giant.png", "b-small.png"]


def _decode(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "decode", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_saltgw_decode_refuses_it_too(tmp_path: Path) -> None:
    giant = tmp_path / "giant.png"
    giant_png(giant)
    proc = _decode(str(giant))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"{giant}: error: cannot read image (declares 12,000 × 12,000 = 144,000,000 pixels, "
        "more than max_image_pixels (40,000,000): refused before decoding)"
    )
    # a line's camera may set its own limits: --config applies them (a lower limit here, so
    # that nothing of 144 Mpx is decoded: that takes minutes on a loaded 2-core machine)
    small = tmp_path / "small.png"
    giant_png(small, 400, 300)
    proc = _decode(str(small))
    assert proc.returncode == 1 and proc.stdout.strip() == f"{small}: no code", proc.stderr
    line = tmp_path / "line.yaml"
    line.write_text(
        'gateway: {id: gw-1, enterprise: "8035", site: daiyue, line: L1}\n'
        "devices:\n"
        "  - {id: cam1, driver: camera, source: {type: folder, path: /tmp},\n"
        "     max_image_pixels: 100000}\n"
        "profiles: []\n"
    )
    proc = _decode("--config", str(line), str(small))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"{small}: error: cannot read image (declares 400 × 300 = 120,000 pixels, "
        "more than max_image_pixels (100,000): refused before decoding)"
    )
