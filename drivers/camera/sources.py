"""A camera's watched folder of image files: the files are read here, in the gateway, checked
against the size limits (drivers/camera/limits.py) and handed to the camera's decode worker as
bytes; nothing here needs OpenCV. (A video device or stream is opened by the worker itself:
drivers/camera/worker.py.) A folder that cannot be listed raises :class:`DeviceOffline`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.base import DeviceOffline
from drivers.camera.config import CameraFolderSource
from drivers.camera.limits import ImageLimits, ImageRefused, read_image_file

__all__ = ["FolderSource", "Frame", "redact"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Frame:
    """One image file: its bytes (None when the file could not be read or was refused:
    ``error`` says why) and its name."""

    data: bytes | None
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
            data: bytes | None = await asyncio.to_thread(read_image_file, path, self.limits)
        except ImageRefused as exc:  # too big to decode: handled like an unreadable image
            data, error = None, f"cannot read image {path.name!r}: {exc}"
        except OSError as exc:
            data, error = None, f"cannot read image {path.name!r}: {exc.strerror}"
        await asyncio.to_thread(self._done, path)
        return Frame(data or None, path.name, error)

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
