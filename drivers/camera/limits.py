"""Size limits checked *before* an image file is decoded (issue 15: a 243 KiB PNG declaring
16,000 × 16,000 pixels made ``cv2.imdecode`` allocate 256 MB).

The file's size is checked first, then the dimensions its header declares — PNG ``IHDR``,
JPEG ``SOFn``, BMP ``BITMAPINFOHEADER`` — are read from the bytes without decoding anything.
A file whose header is none of these is refused too: an unknown format's size cannot be known
before OpenCV decodes it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "ImageLimits",
    "ImageRefused",
    "declared_size",
    "read_image_file",
]

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a 20 MP camera's PNG is ~10 MiB
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: twice the largest line camera's frame

_PNG = b"\x89PNG\r\n\x1a\n"
# SOF0…SOF15 carry the frame's size; C4 (DHT), C8 (JPG), CC (DAC) share the range but do not
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xDA)})  # TEM, RSTn, SOI, EOI


class ImageRefused(ValueError):
    """An image file refused before decoding; the message says why."""


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise ImageRefused(
                f"file is {size:,} bytes, more than max_image_bytes ({self.max_bytes:,}): "
                "refused unread"
            )

    def check(self, data: bytes) -> tuple[int, int]:
        """The (width, height) ``data`` declares; refuses it when too big or unknown."""
        self.check_size(len(data))
        size = declared_size(data)
        if size is None:
            raise ImageRefused(
                "not a PNG, JPEG or BMP file (its dimensions cannot be checked before decoding)"
            )
        width, height = size
        if width <= 0 or height <= 0:
            raise ImageRefused(f"declares {width} × {height} pixels: refused")
        if width * height > self.max_pixels:
            raise ImageRefused(
                f"declares {width:,} × {height:,} = {width * height:,} pixels, more than "
                f"max_image_pixels ({self.max_pixels:,}): refused before decoding"
            )
        return width, height


def read_image_file(path: Path, limits: ImageLimits | None = None) -> bytes:
    """An image file's bytes, checked against ``limits`` (its size, then the dimensions its
    header declares) before anything decodes them: raises :class:`ImageRefused` (and OSError
    when it cannot be read). An empty file gives ``b""``. No image library is needed: the
    gateway reads a camera's files, its decode worker decodes them (drivers/camera/worker.py)."""
    limits = limits or ImageLimits()
    with path.open("rb") as f:
        limits.check_size(os.fstat(f.fileno()).st_size)
        data = f.read(limits.max_bytes + 1)  # it may have grown since
    if data:
        limits.check(data)
    return data


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or BMP header; None when it is none of these or cut."""
    if data.startswith(_PNG):
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"BM") and len(data) >= 26:
        (header,) = struct.unpack("<I", data[14:18])
        if header == 12:  # BITMAPCOREHEADER: 16-bit unsigned sizes
            width, height = struct.unpack("<HH", data[18:22])
            return int(width), int(height)
        width, height = struct.unpack("<ii", data[18:26])
        return int(width), abs(int(height))  # a negative height: rows top-down
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a JPEG
            return None
        i += 2 + length
    return None
