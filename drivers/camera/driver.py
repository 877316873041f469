"""The camera driver: frames from a folder, a video device or a stream, decoded for QR codes by
:class:`drivers.camera.decoder.QrDecoder` in the camera's decode worker, a process of its own
(drivers/camera/worker.py, started and restarted by drivers/camera/client.py): the gateway never
imports OpenCV, numpy or ZBar, and a decoder that crashes never takes the gateway with it.
Readings are shaped like the scanner driver's, so the same profiles (bag_scanner,
case_packer, …) take either.

    folder   one reading per image file: its code(s), or a no-read when none was found;
             a file OpenCV cannot read, one over the size limits, or one the worker died on
             is garbage (``errors["frame"]``, counted in ``rejected``); the file is read here
             and sent to the worker as bytes
    video    the worker opens the device or stream and answers with the next frame that shows
             code(s) (it decodes at most one frame per ``frame_interval_ms`` and drops the
             rest); a reading when those code(s) were not in view within
             ``repeat_window_ms`` (a bag stays in view for several frames); a worker that
             dies makes the camera offline (the supervisor reconnects: a new worker)
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from drivers.base import DeviceFault, DeviceOffline, Reading, TagValue
from drivers.camera.client import DecodeWorker, WorkerDied, WorkerError
from drivers.camera.config import CameraDeviceConfig, CameraDeviceSource, CameraFolderSource
from drivers.camera.engine import predicted_engine
from drivers.camera.sources import FolderSource, Frame, redact

__all__ = ["DECODE_DEADLINE_SECS", "CameraDriver"]

log = logging.getLogger(__name__)

#: Beyond the decode budget: how long one image may take (decompressing a 40 MP file, the
#: strategy that was running when the budget ran out) before the worker is deemed hung.
DECODE_DEADLINE_SECS = 30.0


class CameraDriver:
    """A :class:`drivers.base.Driver` for one camera."""

    def __init__(self, config: CameraDeviceConfig) -> None:
        self.config = config
        self.worker = DecodeWorker(config.id, config.strategies)
        self.frames = 0
        self.rejected = 0
        self._folder: FolderSource | None = None
        if isinstance(config.source, CameraFolderSource):
            self._folder = FolderSource(config.source, config.image_limits())
        self._last: tuple[frozenset[str], float] | None = None
        self.decode_deadline_secs = DECODE_DEADLINE_SECS + config.decode_budget_ms / 1000

    def __repr__(self) -> str:
        return f"CameraDriver({self.config.id!r}, {self.config.source.type})"

    def details(self) -> dict[str, str]:
        """What ``/healthz`` shows of this camera beside its state: the QR decoder in use
        ("zbar", or "opencv" where ZBar is not installed) — the worker's own answer once it
        has started, what it will pick before (drivers/camera/engine.py)."""
        return {"decoder": self.worker.engine or predicted_engine()}

    async def connect(self) -> None:
        if self._folder is not None:
            await self._folder.close()
            await self._folder.open()
        await self._worker_up()
        if self._folder is None:
            await self._open_video()
        log.info("camera %r open (%s)", self.config.id, self.config.source.type)

    async def _worker_up(self) -> None:
        """The worker running, (re)started if needed; else the camera is offline (or at fault:
        the worker refuses its settings)."""
        try:
            await self.worker.ensure_started()
        except WorkerDied as exc:
            raise DeviceOffline(f"camera {self.config.id}: decode worker {exc}") from exc
        except WorkerError as exc:  # OpenCV missing, a strategy it does not know
            raise DeviceFault(f"camera {self.config.id}: decode worker: {exc}") from exc

    async def _open_video(self) -> None:
        source = self.config.source
        spec: dict[str, Any]
        if isinstance(source, CameraDeviceSource):
            spec = {"index": source.index, "width": source.width, "height": source.height}
            what = f"video device {source.index}"
        else:
            assert source.type == "stream"
            spec = {"url": source.url}
            what = f"stream {redact(source.url)}"
        secs = self.config.open_timeout_ms / 1000
        try:
            reply = await self.worker.request(
                {"op": "open", "source": spec, "what": what}, deadline_secs=secs
            )
        except WorkerDied as exc:
            raise DeviceOffline(f"cannot open {what} within {secs:g} s ({exc})") from exc
        if "offline" in reply:
            raise DeviceOffline(str(reply["offline"]))

    async def close(self) -> None:
        if self._folder is not None:
            await self._folder.close()
        await self.worker.stop()

    async def read(self) -> Reading:
        if self._folder is not None:
            await self._worker_up()  # before a file is taken: none is lost to a dead worker
            return await self._reading(await self._folder.read())
        while True:
            try:
                reply = await self.worker.request(self._decode_args("next"))
            except (WorkerDied, WorkerError) as exc:
                raise DeviceOffline(f"camera {self.config.id}: decode worker {exc}") from exc
            if "offline" in reply:
                raise DeviceOffline(str(reply["offline"]))
            now = time.monotonic()
            seen = frozenset(reply["texts"])
            last = self._last
            self._last = (seen, now)
            window = self.config.repeat_window_ms / 1000
            if last is not None and last[0] == seen and now - last[1] <= window:
                continue
            return self._from_result(str(reply["frame"]), reply)

    def _decode_args(self, op: str) -> dict[str, Any]:
        return {
            "op": op,
            "budget_ms": self.config.decode_budget_ms,
            "interval_ms": self.config.frame_interval_ms,
        }

    async def _reading(self, frame: Frame) -> Reading:
        why = frame.error
        if frame.data is not None:
            args = self._decode_args("decode")
            try:
                reply = await self.worker.request(args, frame.data, self.decode_deadline_secs)
            except (WorkerDied, WorkerError) as exc:  # a restarted worker reads the next one
                why = f"cannot read image {frame.name!r}: the decode worker {exc}"
            else:
                if reply["image"]:
                    return self._from_result(frame.name, reply)
        self.frames += 1
        self.rejected += 1
        why = why or f"cannot read image {frame.name!r}"
        log.warning("camera %s: %s", self.config.id, why)
        values: dict[str, TagValue] = {
            "codes": "",
            "noread": False,
            "raw": frame.name,
            "frames": self.frames,
            "rejected": self.rejected,
        }
        return Reading(self.config.id, datetime.now(UTC), values, {"frame": why})

    def _from_result(self, name: str, result: dict[str, Any]) -> Reading:
        self.frames += 1
        texts = [str(t) for t in result["texts"]]
        values: dict[str, TagValue] = {
            "codes": "\n".join(texts),
            "noread": not texts,
            "raw": name,
            "frames": self.frames,
            "rejected": self.rejected,
            "strategy": result["strategy"] or "",
            "decode_ms": round(float(result["ms"]), 1),
        }
        return Reading(self.config.id, datetime.now(UTC), values)
