"""The camera decoder without ZBar: OpenCV's own detectors read the simulator's frames, the
engine is reported (DecodeResult, the driver's details on /healthz), configured ZBar strategies
degrade with a warning, and a config validates with neither OpenCV nor ZBar importable."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import CameraDeviceConfig
from drivers.camera.decoder import QrDecoder, ZbarUnavailable, default_engine, zbar_available
from drivers.camera.driver import CameraDriver
from drivers.camera.strategies import (
    KNOWN_STRATEGIES,
    OPENCV_STRATEGIES,
    STRATEGIES,
    ZBAR_STRATEGIES,
)
from firmware_sim.codegen import CHARSET
from firmware_sim.qrframes import QUIET_ZONE, Distortion, make_frame, qr_image, random_distortion
from tests.support.procs import ROOT
from tests.support.zbar_shim import env_without_zbar

needs_zbar = pytest.mark.skipif(not zbar_available(), reason="ZBar (libzbar0) not installed")


def _payload(rng: random.Random) -> str:
    return "https://trace.example.cn/q?c=8035" + "".join(rng.choices(CHARSET, k=12))


def test_opencv_engine_reads_realistic_frames_without_zbar() -> None:
    """A fixed seeded set of the simulator's realistic frames (bench/qr_decode.py measures the
    rate on hundreds: ~98 %)."""
    dec = QrDecoder(engine="opencv")
    assert dec.engine == "opencv" and [n for n, _ in dec.strategies] == list(OPENCV_STRATEGIES)
    hits = 0
    n = 20
    for i in range(n):
        rng = random.Random(1000 + i)
        payload = _payload(rng)
        frame, _ = make_frame(payload, rng, random_distortion(rng))
        res = dec.decode(frame, budget_ms=250)
        if res.texts:
            assert res.decoder == "opencv" and res.strategy in OPENCV_STRATEGIES, res
        hits += res.texts == [payload]
    assert hits >= n - 2


def test_the_decoder_that_read_the_code_is_reported() -> None:
    rng = random.Random(3)
    payload = _payload(rng)
    frame, _ = make_frame(payload, rng, Distortion(angle_deg=10, module_px=6))
    res = QrDecoder(["aruco"], engine="opencv").decode(frame)
    assert (res.texts, res.strategy, res.decoder) == ([payload], "aruco", "opencv")
    blank = QrDecoder(engine="opencv").decode(np.full((720, 1280), 180, np.uint8))
    assert (blank.texts, blank.strategy, blank.decoder) == ([], None, None)
    assert blank.tried == len(OPENCV_STRATEGIES)


@needs_zbar
def test_zbar_engine_reports_zbar_and_is_the_default_where_installed() -> None:
    rng = random.Random(3)
    payload = _payload(rng)
    frame, _ = make_frame(payload, rng, Distortion(angle_deg=10, module_px=6))
    res = QrDecoder(["half"], engine="zbar").decode(frame)
    assert (res.texts, res.decoder) == ([payload], "zbar")
    assert default_engine() == "zbar" and QrDecoder().engine == "zbar"
    assert [n for n, _ in QrDecoder().strategies] == list(STRATEGIES)


def test_configured_zbar_strategies_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="drivers.camera.decoder"):
        mixed = QrDecoder(["half", "aruco", "full"], engine="opencv")
    assert [n for n, _ in mixed.strategies] == ["aruco"]
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "['half', 'full'] need ZBar" in msg and "decoding with ['aruco']" in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="drivers.camera.decoder"):
        only_zbar = QrDecoder(["half"], engine="opencv")
    assert [n for n, _ in only_zbar.strategies] == list(OPENCV_STRATEGIES)
    assert "OpenCV's cascade" in caplog.text


def test_strategy_names_agree_between_config_and_decoder() -> None:
    assert not set(OPENCV_STRATEGIES) & ZBAR_STRATEGIES
    assert set(STRATEGIES) >= ZBAR_STRATEGIES
    assert len(set(KNOWN_STRATEGIES)) == len(KNOWN_STRATEGIES)
    for name in KNOWN_STRATEGIES:  # every name the config accepts is one the decoder knows
        QrDecoder([name], engine="opencv")
        CameraDeviceConfig(
            id="c", driver="camera", source={"type": "folder", "path": "/tmp"}, strategies=[name]
        )
    with pytest.raises(ValueError, match="unknown decoder engine"):
        QrDecoder(engine="zxing")  # type: ignore[arg-type]


def test_config_validates_with_neither_opencv_nor_zbar_importable() -> None:
    code = (
        "import sys; sys.modules['cv2'] = None; sys.modules['pyzbar'] = None\n"
        "from drivers.camera import CameraDeviceConfig\n"
        "c = CameraDeviceConfig(id='c', driver='camera', source={'type': 'folder', "
        "'path': '/tmp'}, strategies=['aruco_half', 'half'])\n"
        "print(c.strategies)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['aruco_half', 'half']"


def test_without_zbar_the_engine_falls_back_once_and_zbar_on_demand_is_a_clear_error(
    tmp_path: Path,
) -> None:
    """pyzbar present but its native library missing, as on a fresh Debian machine."""
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')\n"
        "from drivers.camera.decoder import QrDecoder, ZbarUnavailable, zbar_available\n"
        "a, b = QrDecoder(), QrDecoder()\n"
        "print(zbar_available(), a.engine, b.engine)\n"
        "try:\n"
        "    QrDecoder(engine='zbar')\n"
        "except ZbarUnavailable as exc:\n"
        "    print('refused:', exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env_without_zbar(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "False opencv opencv"
    assert out[1] == (
        "refused: ZBar cannot be loaded (ImportError: Unable to find zbar shared library); "
        "for ZBar: apt install libzbar0"
    )
    (line,) = proc.stderr.splitlines()  # said once, not per decoder; never a traceback
    assert line.startswith("WARNING ZBar cannot be loaded") and "apt install libzbar0" in line
    assert issubclass(ZbarUnavailable, RuntimeError)


def test_qr_image_is_one_pixel_per_module_level_m_with_a_4_module_quiet_zone() -> None:
    text = "https://trace.example.cn/q?c=8035K7Q2M9X4TZ"
    img = qr_image(text)
    assert img.dtype == np.uint8 and set(np.unique(img)) == {0, 255}
    assert QUIET_ZONE == 4
    n = img.shape[0] - 2 * QUIET_ZONE
    assert img.shape == (n + 8, n + 8) and n == 33  # version 4: 17 + 4·4 modules
    assert (img[:4] == 255).all() and (img[-4:] == 255).all()
    assert (img[:, :4] == 255).all() and (img[:, -4:] == 255).all()
    sym = img[4:-4, 4:-4] < 128
    finder = np.ones((7, 7), bool)
    finder[1:6, 1:6] = False
    finder[2:5, 2:5] = True
    for corner in (sym[:7, :7], sym[:7, -7:], sym[-7:, :7]):
        assert (corner == finder).all()
    # format information beside the top-left finder (ISO/IEC 18004 §7.9): level M is 00
    bits = 0
    for i in range(15):
        r = i if i < 6 else (i + 1 if i < 8 else n - 15 + i)
        bits |= int(sym[r, 8]) << i
    assert (bits ^ 0x5412) >> 13 == 0b00
    big = cv2.resize(img, None, fx=6, fy=6, interpolation=cv2.INTER_NEAREST)
    assert QrDecoder(["aruco"], engine="opencv").decode(big).texts == [text]


def test_camera_driver_names_its_decoder_for_healthz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.config.loader import load_config
    from gateway.http import HttpServer
    from gateway.runtime import Gateway
    from tests.support.configs import demo_line_on_free_ports

    cfg = CameraDeviceConfig(id="cam", driver="camera", source={"type": "folder", "path": "/x"})
    assert CameraDriver(cfg).details() == {"decoder": default_engine()}
    monkeypatch.chdir(tmp_path)  # the demo line's stores are relative: var/…
    gw = Gateway(load_config(demo_line_on_free_ports(tmp_path)))
    gw._build_supervisors()  # the devices as `saltgw run` builds them, none connected
    server = HttpServer(gw, "127.0.0.1", 0)
    server.start()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with pytest.raises(urllib.error.HTTPError) as err:  # not started: 503, still detailed
            opener.open(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
        body = json.loads(err.value.read())
    finally:
        server.stop()
    assert err.value.code == 503 and body["ready"] is False
    assert body["devices"] == {"pal1": {"decoder": default_engine()}}  # the only camera
