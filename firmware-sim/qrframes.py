"""Camera frames of QR-coded salt bags, as a line camera sees them: 1280×720, the bag's printed
QR code (OpenCV's ``QRCodeEncoder``, level M) on a glossy film, tilted, in perspective, blurred,
with glare spots and sensor noise (OpenCV only: what the ``all`` extra installs). Used by the
camera frame source simulator, the decode benchmark (bench/qr_decode.py) and the camera tests.

``make_frame(text, rng, ...)`` draws one frame; ``Distortion`` says what was applied, so a test
or benchmark can report by condition.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["Distortion", "make_frame", "qr_image", "random_distortion"]

Image = NDArray[np.uint8]

QUIET_ZONE = 4  # modules of white around the symbol (ISO/IEC 18004)


@dataclass(frozen=True, slots=True)
class Distortion:
    angle_deg: float = 0.0  # in-plane rotation
    tilt: float = 0.0  # perspective: 0 = square on, 0.25 = strongly tilted
    blur_px: float = 0.0  # Gaussian blur sigma (motion, focus)
    glare_spots: int = 0  # specular reflections on the film
    noise: float = 0.0  # sensor noise sigma (grey levels)
    module_px: float = 6.0  # QR module size in the frame
    contrast: float = 1.0  # print contrast (1 = black on white)


def random_distortion(rng: random.Random) -> Distortion:
    """A realistic frame on a packing line: 15–30° rotation either way, some perspective, mild
    blur, up to three glare spots, noise, faded print, and 4–8 px per module (a line camera is
    set up for at least 4)."""
    return Distortion(
        angle_deg=rng.choice((-1, 1)) * rng.uniform(15, 30),
        tilt=rng.uniform(0.0, 0.15),
        blur_px=rng.uniform(0.0, 1.5),
        glare_spots=rng.randint(0, 3),
        noise=rng.uniform(2, 10),
        module_px=rng.uniform(4.0, 8.0),
        contrast=rng.uniform(0.6, 1.0),
    )


def qr_image(text: str) -> Image:
    """The QR symbol of ``text`` (error correction M) with its 4-module quiet zone, one pixel per
    module, 255 = white.

    OpenCV's encoder draws a 2-module margin: the symbol is cut out at its finder patterns (the
    outermost dark modules on every side) and given the standard quiet zone instead."""
    params = cv2.QRCodeEncoder.Params()
    params.correction_level = cv2.QRCODE_ENCODER_CORRECT_LEVEL_M
    drawn = cv2.QRCodeEncoder.create(params).encode(text)
    dark = np.argwhere(drawn < 128)
    if dark.size == 0:
        raise ValueError(f"OpenCV drew no QR symbol for {text!r}")
    (top, left), (bottom, right) = dark.min(axis=0), dark.max(axis=0)
    symbol = drawn[top : bottom + 1, left : right + 1]
    side = symbol.shape[0]
    if symbol.shape[1] != side or (side - 17) % 4 or not 21 <= side <= 177:
        raise ValueError(f"OpenCV drew a {symbol.shape} QR symbol for {text!r}: not 1 px/module")
    out: Image = np.full((side + 2 * QUIET_ZONE,) * 2, 255, dtype=np.uint8)
    out[QUIET_ZONE : QUIET_ZONE + side, QUIET_ZONE : QUIET_ZONE + side] = np.where(
        symbol < 128, 0, 255
    )
    return out


def _background(rng: random.Random, w: int, h: int) -> Image:
    """A printed film bag: a soft gradient with some coloured print (greyscale here)."""
    nrng = np.random.default_rng(rng.randrange(2**32))
    x = np.linspace(0, 1, w, dtype=np.float32)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    base = 150 + 60 * np.sin(2 * math.pi * (x * rng.uniform(0.3, 1.2) + y * 0.4))
    img = np.clip(base + nrng.normal(0, 3, (h, w)), 0, 255).astype(np.uint8)
    for _ in range(rng.randint(2, 5)):  # print blocks and lettering on the bag
        x0, y0 = rng.randrange(w), rng.randrange(h)
        cv2.rectangle(
            img,
            (x0, y0),
            (x0 + rng.randint(40, 300), y0 + rng.randint(10, 80)),
            int(rng.randint(40, 220)),
            -1,
        )
    return img


def make_frame(
    text: str, rng: random.Random, d: Distortion | None = None, size: tuple[int, int] = (1280, 720)
) -> tuple[Image, Distortion]:
    """One greyscale frame showing ``text`` as a QR code on a bag, distorted by ``d``."""
    d = d or random_distortion(rng)
    w, h = size
    frame: Any = _background(rng, w, h).astype(np.float32)
    sym = qr_image(text)
    side = max(21, round(sym.shape[0] * d.module_px))
    label = cv2.resize(sym, (side, side), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    label = 255 - (255 - label) * d.contrast  # faded print
    cx = rng.uniform(0.35, 0.65) * w
    cy = rng.uniform(0.35, 0.65) * h
    half = side / 2
    src = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float32)
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float32)
    t = d.tilt * side  # perspective: one side nearer the camera
    corners += np.array([[-t / 2, 0], [t / 2, 0], [-t / 4, 0], [t / 4, 0]], dtype=np.float32)
    a = math.radians(d.angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=np.float32)
    dst = (corners @ rot.T + np.array([cx, cy], dtype=np.float32)).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(label, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=-1)
    mask = cv2.warpPerspective(
        np.ones_like(label), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0
    )
    frame = frame * (1 - mask) + warped * mask
    for _ in range(d.glare_spots):  # specular glare on the glossy film
        gx = cx + rng.uniform(-0.6, 0.6) * side
        gy = cy + rng.uniform(-0.6, 0.6) * side
        r = rng.uniform(0.03, 0.08) * side
        yy, xx = np.ogrid[:h, :w]
        spot = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * r * r)).astype(np.float32)
        frame = frame + spot * rng.uniform(60, 160)
    if d.blur_px > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), d.blur_px)
    if d.noise > 0:
        nrng = np.random.default_rng(rng.randrange(2**32))
        frame = frame + nrng.normal(0, d.noise, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8), d
