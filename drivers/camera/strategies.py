"""The camera decoder's strategies and their default orders (drivers/camera/decoder.py says what
each does; bench/qr_decode.py measures them). Kept apart from the decoder so that validating a
config needs neither OpenCV nor ZBar.

Two default cascades, one per engine (the decoder picks the engine once: ZBar when its native
library loads, else OpenCV alone):

    STRATEGIES          with ZBar (pyzbar + libzbar0): ZBar first, OpenCV's detectors between
    OPENCV_STRATEGIES   without ZBar: OpenCV's QR detectors only

A strategy in ``ZBAR_STRATEGIES`` needs ZBar; on a machine without it a configured ZBar
strategy is skipped (the decoder says so once in the log) and, when none is left, the OpenCV
cascade is used.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ENGINES",
    "KNOWN_STRATEGIES",
    "OPENCV_STRATEGIES",
    "STRATEGIES",
    "ZBAR_STRATEGIES",
    "Engine",
]

Engine = Literal["zbar", "opencv"]

#: The decoders that read the codes: ZBar (pyzbar) or OpenCV's own QR detectors.
ENGINES: tuple[str, ...] = ("zbar", "opencv")

STRATEGIES: tuple[str, ...] = (
    "half",
    "half_thr",
    "full",
    "aruco",
    "rot-15",
    "rot+15",
    "half_clahe",
    "full_thr",
    "blackhat",
    "sharpen",
    "up",
    "opencv",
)

OPENCV_STRATEGIES: tuple[str, ...] = (
    "aruco_half",
    "aruco_half_thr",
    "aruco",
    "aruco_sharpen",
    "aruco_thr",
)

#: Every strategy a config may name, in no particular order of preference.
KNOWN_STRATEGIES: tuple[str, ...] = STRATEGIES + tuple(
    s for s in OPENCV_STRATEGIES if s not in STRATEGIES
)

#: The strategies that read with ZBar (all others use OpenCV only).
ZBAR_STRATEGIES: frozenset[str] = frozenset(
    {
        "half",
        "half_thr",
        "full",
        "rot-15",
        "rot+15",
        "half_clahe",
        "full_thr",
        "blackhat",
        "sharpen",
        "up",
    }
)
