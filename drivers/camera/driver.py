"""The camera driver: frames from a folder, a video device or a stream, decoded for QR codes by
:class:`drivers.camera.decoder.QrDecoder`; readings shaped like the scanner driver's, so the same
profiles (bag_scanner, case_packer, …) take either.

    folder   one reading per image file: its code(s), or a no-read when none was found;
             a file OpenCV cannot read is garbage (``errors["frame"]``, counted in ``rejected``)
    video    a reading when a frame shows code(s) that were not in view within
             ``repeat_window_ms`` (a bag stays in view for several frames); frames without a
             code give nothing (the camera is not triggered per bag)
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from drivers.base import Reading, TagValue
from drivers.camera.config import CameraDeviceConfig, CameraFolderSource
from drivers.camera.decoder import DecodeResult, QrDecoder
from drivers.camera.sources import FolderSource, Frame, VideoSource

__all__ = ["CameraDriver"]

log = logging.getLogger(__name__)


class CameraDriver:
    """A :class:`drivers.base.Driver` for one camera."""

    def __init__(self, config: CameraDeviceConfig) -> None:
        self.config = config
        self.decoder = QrDecoder(config.strategies)
        self.frames = 0
        self.rejected = 0
        self._source: FolderSource | VideoSource
        if isinstance(config.source, CameraFolderSource):
            self._source = FolderSource(config.source, config.image_limits())
        else:
            self._source = VideoSource(config.source, config.open_timeout_ms / 1000)
        self._last: tuple[frozenset[str], float] | None = None
        self._next_decode = 0.0

    def __repr__(self) -> str:
        return f"CameraDriver({self.config.id!r}, {self.config.source.type})"

    def details(self) -> dict[str, str]:
        """What ``/healthz`` shows of this camera beside its state: the QR decoder in use
        ("zbar", or "opencv" where ZBar is not installed)."""
        return {"decoder": self.decoder.engine}

    async def connect(self) -> None:
        await self._source.close()
        await self._source.open()
        log.info("camera %r open (%s)", self.config.id, self.config.source.type)

    async def close(self) -> None:
        await self._source.close()

    async def read(self) -> Reading:
        if isinstance(self._source, FolderSource):
            frame = await self._source.read()
            return await self._reading(frame)
        while True:
            frame = await self._source.read()
            now = time.monotonic()
            if now < self._next_decode:
                continue
            self._next_decode = now + self.config.frame_interval_ms / 1000
            result = await self._decode(frame)
            if not result.texts:
                continue
            seen = frozenset(result.texts)
            last = self._last
            self._last = (seen, now)
            window = self.config.repeat_window_ms / 1000
            if last is not None and last[0] == seen and now - last[1] <= window:
                continue
            return self._from_result(frame, result)

    async def _decode(self, frame: Frame) -> DecodeResult:
        assert frame.image is not None
        return await asyncio.to_thread(
            self.decoder.decode, frame.image, self.config.decode_budget_ms
        )

    async def _reading(self, frame: Frame) -> Reading:
        if frame.image is None:
            self.frames += 1
            self.rejected += 1
            why = frame.error or f"cannot read image {frame.name!r}"
            log.warning("camera %s: %s", self.config.id, why)
            values: dict[str, TagValue] = {
                "codes": "",
                "noread": False,
                "raw": frame.name,
                "frames": self.frames,
                "rejected": self.rejected,
            }
            errors = {"frame": why}
            return Reading(self.config.id, datetime.now(UTC), values, errors)
        return self._from_result(frame, await self._decode(frame))

    def _from_result(self, frame: Frame, result: DecodeResult) -> Reading:
        self.frames += 1
        values: dict[str, TagValue] = {
            "codes": "\n".join(result.texts),
            "noread": not result.texts,
            "raw": frame.name,
            "frames": self.frames,
            "rejected": self.rejected,
            "strategy": result.strategy or "",
            "decode_ms": round(result.ms, 1),
        }
        return Reading(self.config.id, datetime.now(UTC), values)
