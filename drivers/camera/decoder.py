"""Decode the QR codes in a camera frame: ZBar (pyzbar) and OpenCV's QR detectors behind cheap
preprocessing, tried in order, stopping at the first strategy that reads a code.

Why a cascade: each decoder fails on different frames of film bags on a line — ZBar on small
modules and some rotations, OpenCV on low contrast; glare spots and uneven light defeat both
unless the image is flattened first. The order puts the cheapest, most successful strategies
first (measured with ``bench/qr_decode.py``, figures in docs/performance.md): most frames are
read at half resolution in a few milliseconds, so the cascade is on average *faster* than ZBar
alone on the full frame, and the expensive strategies only run on the hard frames.

The engine is chosen once per process (:func:`default_engine`): ZBar when pyzbar and its native
library (Debian's ``libzbar0``) load, else OpenCV's detectors alone — one log line says so and
how to get ZBar; decoding never fails for want of it. ``QrDecoder(engine=...)`` forces one.

With ZBar (``STRATEGIES``, the default order)::

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

Without ZBar (``OPENCV_STRATEGIES``): OpenCV only, QRCodeDetectorAruco unless named otherwise::

    aruco_half      at half resolution                               most frames, fast
    aruco_half_thr  half resolution, adaptive threshold              glare, uneven light
    aruco           the full frame                                   small modules
    aruco_sharpen   after an unsharp mask                            blur
    aruco_thr       the full frame, adaptive threshold               hard frames

(The ZBar cascade's ``aruco`` and ``opencv`` need no ZBar either and may be configured here.)

Frames smaller than 600 px on their short side skip the half-resolution steps.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from cv2.typing import MatLike

from drivers.camera.limits import ImageLimits, ImageRefused, read_image_file
from drivers.camera.strategies import OPENCV_STRATEGIES, STRATEGIES, ZBAR_STRATEGIES, Engine

__all__ = [
    "OPENCV_STRATEGIES",
    "STRATEGIES",
    "DecodeResult",
    "Engine",
    "ImageRefused",
    "QrDecoder",
    "ZbarUnavailable",
    "decode_image",
    "default_engine",
    "load_image",
    "to_gray",
    "zbar_available",
]

log = logging.getLogger(__name__)

Gray = MatLike
HALF_MIN_SIDE = 600
ZBAR_HINT = "apt install libzbar0"


class ZbarUnavailable(RuntimeError):
    """``QrDecoder(engine="zbar")`` on a machine where pyzbar or libzbar0 cannot be loaded."""


@functools.cache
def _pyzbar() -> tuple[Any, str | None]:
    """pyzbar's decoding module and None, or None and why it cannot be loaded (imported once)."""
    try:
        from pyzbar import pyzbar
    except (ImportError, OSError) as exc:  # no pyzbar, or no/broken libzbar (a ctypes load)
        return None, f"{type(exc).__name__}: {exc}"
    return pyzbar, None


def zbar_available() -> bool:
    """True when ZBar can decode here: pyzbar imports and finds its native library."""
    return _pyzbar()[0] is not None


@functools.cache
def default_engine() -> Engine:
    """ZBar when available, else OpenCV; chosen once per process and said once in the log."""
    module, why = _pyzbar()
    if module is not None:
        return "zbar"
    log.warning(
        "ZBar cannot be loaded (%s): QR codes are read with OpenCV's detectors alone, which read "
        "fewer hard frames (docs/performance.md); for ZBar: %s",
        why,
        ZBAR_HINT,
    )
    return "opencv"


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """The texts read in one frame (empty: no code), by which strategy and decoder ("zbar" or
    "opencv"; None when nothing was read), and how long it took."""

    texts: list[str] = field(default_factory=list)
    strategy: str | None = None
    ms: float = 0.0
    tried: int = 0
    decoder: Engine | None = None


def to_gray(image: MatLike) -> Gray:
    """A greyscale view of a camera frame (BGR, BGRA or already grey)."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def load_image(path: Path, limits: ImageLimits | None = None) -> Gray | None:
    """A greyscale image from a file, None when OpenCV cannot read it. Raises
    :class:`ImageRefused` when the file or the dimensions its header declares exceed
    ``limits`` (drivers/camera/limits.py): checked before anything is decoded."""
    return decode_image(read_image_file(path, limits))


def decode_image(data: bytes) -> Gray | None:
    """A greyscale image from an image file's bytes (checked by the caller), None when OpenCV
    cannot read them."""
    if not data:
        return None
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    return None if img is None else img


def _texts(raw: Sequence[bytes]) -> list[str]:
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
    """Reusable (holds the OpenCV detectors); not thread-safe: one per thread.

    ``strategies``: names in order (default: the engine's measured cascade). ``engine``: "zbar"
    (raises :class:`ZbarUnavailable` where ZBar cannot be loaded), "opencv" (never uses ZBar),
    or None: :func:`default_engine`. With the OpenCV engine, ZBar strategies among
    ``strategies`` are skipped with a warning; if none is left, the OpenCV cascade is used."""

    def __init__(self, strategies: Sequence[str] | None = None, engine: Engine | None = None):
        self.engine: Engine = engine or default_engine()
        self._zbar_decode: Any = None
        if self.engine == "zbar":
            module, why = _pyzbar()
            if module is None:
                raise ZbarUnavailable(f"ZBar cannot be loaded ({why}); for ZBar: {ZBAR_HINT}")
            self._zbar_decode = module.decode
            self._qr = [module.ZBarSymbol.QRCODE]
        elif engine not in (None, "opencv"):
            raise ValueError(f"unknown decoder engine {engine!r} (known: zbar, opencv)")
        self._aruco = cv2.QRCodeDetectorAruco()
        self._classic = cv2.QRCodeDetector()
        self._clahe = cv2.createCLAHE(clipLimit=3.0, tileGridSize=(16, 16))
        aruco, zbar = self._aruco, self._zbar
        table: dict[str, Callable[[Gray], list[str]]] = {
            "half": lambda g: zbar(self._half(g)),
            "half_thr": lambda g: zbar(self._threshold(self._half(g), 15)),
            "full": zbar,
            "aruco": lambda g: self._opencv(aruco, g),
            "half_clahe": lambda g: zbar(self._clahe.apply(self._half(g))),
            "full_thr": lambda g: zbar(self._threshold(g, 31)),
            "blackhat": lambda g: zbar(self._blackhat(g)),
            "opencv": lambda g: self._opencv(self._classic, g),
            "rot+15": lambda g: zbar(self._rotate(g, 15)),
            "rot-15": lambda g: zbar(self._rotate(g, -15)),
            "sharpen": lambda g: zbar(self._sharpen(g)),
            "up": lambda g: zbar(
                cv2.resize(g, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
            ),
            "aruco_half": lambda g: self._opencv(aruco, self._half(g)),
            "aruco_half_thr": lambda g: self._opencv(aruco, self._threshold(self._half(g), 15)),
            "aruco_sharpen": lambda g: self._opencv(aruco, self._sharpen(g)),
            "aruco_thr": lambda g: self._opencv(aruco, self._threshold(g, 31)),
        }
        names = list(strategies or (STRATEGIES if self.engine == "zbar" else OPENCV_STRATEGIES))
        unknown = [n for n in names if n not in table]
        if unknown:
            raise ValueError(f"unknown decode strategies {unknown} (known: {list(table)})")
        if self.engine == "opencv":
            names = self._without_zbar(names)
        self.strategies = [(n, table[n]) for n in names]

    @staticmethod
    def _without_zbar(names: list[str]) -> list[str]:
        skipped = [n for n in names if n in ZBAR_STRATEGIES]
        if not skipped:
            return names
        kept = [n for n in names if n not in ZBAR_STRATEGIES]
        log.warning(
            "decode strategies %s need ZBar, which is not used here: skipped; decoding with %s",
            skipped,
            kept or f"OpenCV's cascade {list(OPENCV_STRATEGIES)}",
        )
        return kept or list(OPENCV_STRATEGIES)

    def decode(self, image: MatLike, budget_ms: float | None = None) -> DecodeResult:
        """Try the strategies in order; the first that reads anything wins. With ``budget_ms``,
        no further strategy starts once that much time has passed (a line camera's deadline)."""
        t0 = time.perf_counter()
        gray = to_gray(image)
        small = min(gray.shape[:2]) < HALF_MIN_SIDE
        tried = 0
        for name, strategy in self.strategies:
            if small and "half" in name:
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
                by: Engine = "zbar" if name in ZBAR_STRATEGIES else "opencv"
                return DecodeResult(texts, name, (time.perf_counter() - t0) * 1000, tried, by)
        return DecodeResult([], None, (time.perf_counter() - t0) * 1000, tried)

    # -- decoders ---------------------------------------------------------------------------------
    def _zbar(self, gray: Gray) -> list[str]:
        return _texts([s.data for s in self._zbar_decode(gray, symbols=self._qr)])

    @staticmethod
    def _opencv(detector: cv2.QRCodeDetector | cv2.QRCodeDetectorAruco, gray: Gray) -> list[str]:
        ok, raw, _, _ = detector.detectAndDecodeBytesMulti(gray)
        if not ok:
            return []
        return _texts([bytes(b) for b in raw if b])

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
