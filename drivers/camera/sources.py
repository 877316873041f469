"""Where a camera's frames come from: a watched folder of image files, or an OpenCV
VideoCapture (a local device, an RTSP/HTTP stream, a video file).

Blocking OpenCV calls run on a worker thread; a source raises :class:`DeviceOffline` when it
cannot be opened or stops delivering frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from cv2.typing import MatLike

from drivers.base import DeviceOffline
from drivers.camera.config import CameraDeviceSource, CameraFolderSource, CameraStreamSource
from drivers.camera.decoder import load_image
from drivers.camera.limits import ImageLimits, ImageRefused

__all__ = ["FolderSource", "Frame", "VideoSource", "redact"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: the image (None when the file could not be read: ``error`` says why) and
    where it came from."""

    image: MatLike | None
    name: str
    error: str | None = None


def redact(url: str) -> str:
    """A URL without its credentials, for logs and messages."""
    return re.sub(r"://[^/@]*@", "://***@", url)


class FolderSource:
    """New image files in a folder, oldest first; each is moved, deleted or remembered once read."""

    def __init__(self, cfg: CameraFolderSource, limits: ImageLimits | None = None) -> None:
        self.cfg = cfg
        self.limits = limits or ImageLimits()
        self.done_dir = cfg.done_dir or cfg.path / "done"
        self._seen: set[str] = set()

    async def open(self) -> None:
        if not self.cfg.path.is_dir():
            raise DeviceOffline(f"camera folder {self.cfg.path} does not exist")
        if self.cfg.after == "move":
            self.done_dir.mkdir(parents=True, exist_ok=True)

    def _next_file(self) -> Path | None:
        now = time.time()
        candidates: list[tuple[float, str, Path]] = []
        try:
            entries = list(os.scandir(self.cfg.path))
        except OSError as exc:
            raise DeviceOffline(f"camera folder {self.cfg.path}: {exc.strerror}") from exc
        for entry in entries:
            if not entry.is_file() or entry.name in self._seen:
                continue
            if not any(fnmatch.fnmatch(entry.name.lower(), p) for p in self.cfg.patterns):
                continue
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue
            if (now - mtime) * 1000 < self.cfg.settle_ms:
                continue  # may still be being written
            candidates.append((mtime, entry.name, Path(entry.path)))
        return min(candidates)[2] if candidates else None

    async def read(self) -> Frame:
        while True:
            path = await asyncio.to_thread(self._next_file)
            if path is not None:
                break
            await asyncio.sleep(self.cfg.poll_ms / 1000)
        error = None
        try:
            image = await asyncio.to_thread(load_image, path, self.limits)
        except ImageRefused as exc:  # too big to decode: handled like an unreadable image
            image, error = None, f"cannot read image {path.name!r}: {exc}"
        except OSError as exc:
            image, error = None, f"cannot read image {path.name!r}: {exc.strerror}"
        await asyncio.to_thread(self._done, path)
        return Frame(image, path.name, error)

    def _done(self, path: Path) -> None:
        try:
            if self.cfg.after == "move":
                path.replace(self.done_dir / path.name)
            elif self.cfg.after == "delete":
                path.unlink()
            else:
                self._seen.add(path.name)
        except OSError as exc:  # never read the same file twice, even when it cannot move
            log.warning("camera folder: cannot %s %r: %s", self.cfg.after, str(path), exc)
            self._seen.add(path.name)

    async def close(self) -> None:
        return None


class VideoSource:
    """Frames of a cv2.VideoCapture (device index or URL)."""

    def __init__(self, cfg: CameraDeviceSource | CameraStreamSource, open_secs: float) -> None:
        self.cfg = cfg
        self.open_secs = open_secs
        self._cap: Any = None
        self._count = 0
        if isinstance(cfg, CameraDeviceSource):
            self.what = f"video device {cfg.index}"
        else:
            self.what = f"stream {redact(cfg.url)}"

    def _open(self) -> Any:
        if isinstance(self.cfg, CameraDeviceSource):
            cap = cv2.VideoCapture(self.cfg.index)
            if self.cfg.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
            if self.cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
        else:
            cap = cv2.VideoCapture(self.cfg.url)
        return cap

    async def open(self) -> None:
        try:
            cap = await asyncio.wait_for(asyncio.to_thread(self._open), self.open_secs)
        except TimeoutError as exc:
            raise DeviceOffline(f"cannot open {self.what} within {self.open_secs:g} s") from exc
        if cap is None or not cap.isOpened():
            raise DeviceOffline(f"cannot open {self.what}")
        self._cap = cap

    async def read(self) -> Frame:
        cap = self._cap
        if cap is None:
            raise DeviceOffline(f"{self.what} is not open")
        ok, image = await asyncio.to_thread(cap.read)
        if not ok or image is None:
            raise DeviceOffline(f"{self.what} delivered no frame (ended or dropped)")
        self._count += 1
        return Frame(image, f"frame {self._count}")

    async def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(cap.release)
