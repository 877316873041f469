"""The camera decoder's strategies in their default order (drivers/camera/decoder.py says what
each does; bench/qr_decode.py measures them). Kept apart from the decoder so that validating a
config needs neither OpenCV nor ZBar."""

from __future__ import annotations

__all__ = ["STRATEGIES"]

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
