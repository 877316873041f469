"""Decode the QR codes in a camera frame: pyzbar (ZBar) and OpenCV's QR detectors behind cheap
preprocessing, tried in order, stopping at the first strategy that reads a code.

Why a cascade: each decoder fails on different frames of film bags on a line — ZBar on small
modules and some rotations, OpenCV on low contrast; glare spots and uneven light defeat both
unless the image is flattened first. The order puts the cheapest, most successful strategies
first (measured with ``bench/qr_decode.py``, figures in docs/performance.md): most frames are
read at half resolution in a few milliseconds, so the cascade is on average *faster* than ZBar
alone on the full frame, and the expensive strategies only run on the hard frames.

    half        ZBar on the frame at half resolution (grey)        modules ≥ ~4 px
    half_thr    ZBar on half resolution, adaptive threshold         glare, uneven light
    full        ZBar on the full frame                              small modules
    aruco       OpenCV QRCodeDetectorAruco on the full frame        rotation, perspective
    rot∓15      ZBar on the frame rotated by ∓15°                   ZBar's worst angles
    half_clahe  ZBar on half resolution after CLAHE                 low contrast
    full_thr    ZBar on the full frame, adaptive threshold
    blackhat    ZBar after a black-hat transform (removes glare bumps)
    sharpen     ZBar after an unsharp mask                          motion/focus blur
    up          ZBar at 1.5× (bicubic)                              tiny modules
    opencv      OpenCV QRCodeDetector (classic): slow, last resort

Frames smaller than 600 px on their short side skip the half-resolution steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from cv2.typing import MatLike
from pyzbar import pyzbar

from drivers.camera.strategies import STRATEGIES

__all__ = ["STRATEGIES", "DecodeResult", "QrDecoder", "load_image", "to_gray"]

log = logging.getLogger(__name__)

Gray = MatLike
_QR = [pyzbar.ZBarSymbol.QRCODE]
HALF_MIN_SIDE = 600


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """The texts read in one frame (empty: no code), by which strategy, and how long it took."""

    texts: list[str] = field(default_factory=list)
    strategy: str | None = None
    ms: float = 0.0
    tried: int = 0


def to_gray(image: MatLike) -> Gray:
    """A greyscale view of a camera frame (BGR, BGRA or already grey)."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def load_image(path: Path) -> Gray | None:
    """A greyscale image from a file, None when OpenCV cannot read it."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return None if img is None else img


def _texts(raw: list[bytes]) -> list[str]:
    out: list[str] = []
    for data in raw:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        if text and text not in out:
            out.append(text)
    return out


class QrDecoder:
    """Reusable (holds the OpenCV detectors); not thread-safe: one per thread."""

    def __init__(self, strategies: list[str] | None = None) -> None:
        self._aruco = cv2.QRCodeDetectorAruco()
        self._classic = cv2.QRCodeDetector()
        self._clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(16, 16))
        table: dict[str, Callable[[Gray], list[str]]] = {
            "half": lambda g: self._zbar(self._half(g)),
            "half_thr": lambda g: self._zbar(self._threshold(self._half(g), 15)),
            "full": self._zbar,
            "aruco": lambda g: self._opencv(self._aruco, g),
            "half_clahe": lambda g: self._zbar(self._clahe.apply(self._half(g))),
            "full_thr": lambda g: self._zbar(self._threshold(g, 31)),
            "blackhat": lambda g: self._zbar(self._blackhat(g)),
            "opencv": lambda g: self._opencv(self._classic, g),
            "rot+15": lambda g: self._zbar(self._rotate(g, 15)),
            "rot-15": lambda g: self._zbar(self._rotate(g, -15)),
            "sharpen": lambda g: self._zbar(self._sharpen(g)),
            "up": lambda g: self._zbar(
                cv2.resize(g, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
            ),
        }
        names = strategies or list(STRATEGIES)
        unknown = [n for n in names if n not in table]
        if unknown:
            raise ValueError(f"unknown decode strategies {unknown} (known: {list(table)})")
        self.strategies = [(n, table[n]) for n in names]

    def decode(self, image: MatLike, budget_ms: float | None = None) -> DecodeResult:
        """Try the strategies in order; the first that reads anything wins. With ``budget_ms``,
        no further strategy starts once that much time has passed (a line camera's deadline)."""
        t0 = time.perf_counter()
        gray = to_gray(image)
        small = min(gray.shape[:2]) < HALF_MIN_SIDE
        tried = 0
        for name, strategy in self.strategies:
            if small and name.startswith("half"):
                continue
            if budget_ms is not None and tried and (time.perf_counter() - t0) * 1000 > budget_ms:
                break
            tried += 1
            try:
                texts = strategy(gray)
            except cv2.error as exc:  # a degenerate frame for one strategy: try the next
                log.debug("decode strategy %s failed: %s", name, exc)
                continue
            if texts:
                return DecodeResult(texts, name, (time.perf_counter() - t0) * 1000, tried)
        return DecodeResult([], None, (time.perf_counter() - t0) * 1000, tried)

    # -- decoders ---------------------------------------------------------------------------------
    @staticmethod
    def _zbar(gray: Gray) -> list[str]:
        return _texts([s.data for s in pyzbar.decode(gray, symbols=_QR)])

    @staticmethod
    def _opencv(detector: cv2.QRCodeDetector | cv2.QRCodeDetectorAruco, gray: Gray) -> list[str]:
        ok, texts, _, _ = detector.detectAndDecodeMulti(gray)
        if not ok:
            return []
        return _texts([t.encode("utf-8") for t in texts if t])

    # -- preprocessing ----------------------------------------------------------------------------
    @staticmethod
    def _half(gray: Gray) -> Gray:
        return cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)

    @staticmethod
    def _threshold(gray: Gray, block: int) -> Gray:
        return cv2.adaptiveThreshold(
            gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, 5
        )

    @staticmethod
    def _blackhat(gray: Gray) -> Gray:
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (31, 31))
        hat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
        inverted = (255 - hat).astype(np.uint8)
        return cv2.normalize(inverted, np.empty_like(inverted), 0, 255, cv2.NORM_MINMAX)

    @staticmethod
    def _rotate(gray: Gray, degrees: float) -> Gray:
        h, w = gray.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        return cv2.warpAffine(gray, m, (w, h), borderValue=255)

    @staticmethod
    def _sharpen(gray: Gray) -> Gray:
        blur = cv2.GaussianBlur(gray, (0, 0), 1.5)
        return cv2.addWeighted(gray, 1.8, blur, -0.8, 0)
