"""The camera decoder on generated line frames (firmware_sim/qrframes.py), and its config."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from drivers.camera import CameraDeviceConfig
from drivers.camera.decoder import QrDecoder, zbar_available
from drivers.camera.strategies import STRATEGIES
from firmware_sim.codegen import CHARSET
from firmware_sim.qrframes import Distortion, make_frame, random_distortion

# the ZBar cascade; without libzbar0 the OpenCV one is tested in test_camera_fallback.py
needs_zbar = pytest.mark.skipif(not zbar_available(), reason="ZBar (libzbar0) not installed")


def _payload(rng: random.Random) -> str:
    return "https://trace.example.cn/q?c=8035" + "".join(rng.choices(CHARSET, k=12))


@needs_zbar
def test_reads_realistic_tilted_blurred_glared_frames() -> None:
    dec = QrDecoder(engine="zbar")
    hits = 0
    n = 20
    for i in range(n):
        rng = random.Random(1000 + i)
        payload = _payload(rng)
        frame, _ = make_frame(payload, rng, random_distortion(rng))
        res = dec.decode(frame)
        hits += res.texts == [payload]
        assert res.strategy is None or res.strategy in STRATEGIES
    assert hits >= n - 1  # bench/qr_decode.py measures the rate on hundreds of frames


@needs_zbar
def test_a_frame_that_defeats_zbar_at_half_size_is_read_by_a_later_strategy() -> None:
    rng = random.Random(7)
    payload = _payload(rng)
    d = Distortion(angle_deg=22, module_px=3.2, blur_px=0.6, noise=4, contrast=0.9)
    frame, _ = make_frame(payload, rng, d)
    res = QrDecoder(engine="zbar").decode(frame)
    assert res.texts == [payload] and res.strategy != "half" and res.tried >= 2
    only_half = QrDecoder(["half"], engine="zbar").decode(frame)
    assert only_half.texts == [] and only_half.tried == 1


def test_blank_frame_has_no_code_and_colour_frames_work() -> None:
    dec = QrDecoder()
    assert dec.decode(np.full((720, 1280), 180, np.uint8)).texts == []
    rng = random.Random(3)
    payload = _payload(rng)
    frame, _ = make_frame(payload, rng, Distortion(angle_deg=5))
    assert dec.decode(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)).texts == [payload]


def test_budget_stops_the_cascade() -> None:
    res = QrDecoder().decode(np.full((720, 1280), 180, np.uint8), budget_ms=0.0)
    assert res.tried == 1 and res.texts == []


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown strategies"):
        CameraDeviceConfig(
            id="c", driver="camera", source={"type": "folder", "path": "/tmp"}, strategies=["x"]
        )
    with pytest.raises(ValueError, match="unknown decode strategies"):
        QrDecoder(["nope"])


def test_camera_example_is_valid_and_quoted_in_the_readme() -> None:
    from pathlib import Path

    import yaml

    from gateway.config.models import device_adapter

    folder = Path(__file__).parents[2] / "drivers" / "camera"
    example = (folder / "example.yaml").read_text()
    parsed = [device_adapter().validate_python(e) for e in yaml.safe_load(example)]
    assert [p.source.type for p in parsed] == ["folder", "stream"]
    assert "```yaml\n" + example + "```" in (folder / "README.md").read_text()
