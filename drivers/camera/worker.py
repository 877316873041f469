"""A camera's decode worker: the process that holds OpenCV, numpy and ZBar so that the gateway
never imports them (docs/performance.md, "Memory"). ``CameraDriver`` starts one per camera
(drivers/camera/client.py) as ``python -m drivers.camera.worker`` and speaks the framing of
drivers/camera/wire.py on its stdin/stdout; its log goes to stderr, which the gateway relays.

    op       request fields                      answer
    hello    strategies                          engine ("zbar" | "opencv")
    decode   budget_ms; payload: an image file   image: false (OpenCV cannot read it), or
                                                 image: true, texts, strategy, ms, tried, decoder
    open     source: {index, width, height} or   {} or offline: why
             {url}; what (for messages)
    next     interval_ms, budget_ms              the next frame showing code(s): frame, texts,
                                                 strategy, ms, tried, decoder; or offline: why
    close    —                                   {} (the video capture released)

One request at a time, answered in order. A request that raises is answered with ``error``; the
worker goes on. It exits when its stdin closes (the gateway stopped or died).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

import cv2

from drivers.camera import wire
from drivers.camera.decoder import DecodeResult, QrDecoder, decode_image

__all__ = ["Worker", "main"]

log = logging.getLogger("drivers.camera.worker")  # not __main__: it runs with -m


def _result(result: DecodeResult) -> dict[str, Any]:
    return {
        "texts": result.texts,
        "strategy": result.strategy,
        "ms": result.ms,
        "tried": result.tried,
        "decoder": result.decoder,
    }


class Worker:
    """The worker's state: its decoder and, for a video camera, the open capture."""

    def __init__(self) -> None:
        self.decoder: QrDecoder | None = None
        self._cap: Any = None
        self._what = "video"
        self._count = 0
        self._next_decode = 0.0

    def handle(self, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
        op = header.get("op")
        if op == "hello":
            self.decoder = QrDecoder(header.get("strategies"))
            return {"engine": self.decoder.engine}
        if op == "decode":
            image = decode_image(payload)
            if image is None:
                return {"image": False}
            return {"image": True, **_result(self._decoder().decode(image, header["budget_ms"]))}
        if op == "open":
            return self._open(header["source"], str(header.get("what", "video")))
        if op == "next":
            return self._next(float(header["interval_ms"]), float(header["budget_ms"]))
        if op == "close":
            self._release()
            return {}
        raise ValueError(f"unknown op {op!r}")

    def _decoder(self) -> QrDecoder:
        if self.decoder is None:
            raise RuntimeError("no hello yet: the decoder is not set up")
        return self.decoder

    def _open(self, source: dict[str, Any], what: str) -> dict[str, Any]:
        self._release()
        self._what = what
        if "url" in source:
            cap = cv2.VideoCapture(str(source["url"]))
        else:
            cap = cv2.VideoCapture(int(source["index"]))
            if source.get("width"):
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, source["width"])
            if source.get("height"):
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, source["height"])
        if cap is None or not cap.isOpened():
            return {"offline": f"cannot open {what}"}
        self._cap = cap
        self._count = 0
        self._next_decode = 0.0
        return {}

    def _next(self, interval_ms: float, budget_ms: float) -> dict[str, Any]:
        """Frames are read as they come and one per ``interval_ms`` is decoded (the others are
        dropped here, in the worker); the first that shows a code is answered."""
        decoder = self._decoder()
        while True:
            if self._cap is None:
                return {"offline": f"{self._what} is not open"}
            ok, image = self._cap.read()
            if not ok or image is None:
                self._release()
                return {"offline": f"{self._what} delivered no frame (ended or dropped)"}
            self._count += 1
            now = time.monotonic()
            if now < self._next_decode:
                continue
            self._next_decode = now + interval_ms / 1000
            result = decoder.decode(image, budget_ms)
            if result.texts:
                return {"frame": f"frame {self._count}", **_result(result)}

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            try:
                cap.release()
            except cv2.error as exc:
                log.debug("releasing %s: %s", self._what, exc)


def serve(inp: IO[bytes], out: IO[bytes]) -> int:
    worker = Worker()
    while True:
        try:
            msg = wire.read_sync(inp)
        except wire.WireError as exc:
            log.error("%s; exiting", exc)
            return 2
        if msg is None:  # the gateway closed our stdin: done
            worker.handle({"op": "close"}, b"")
            return 0
        header, payload = msg
        try:
            reply = worker.handle(header, payload)
        except Exception as exc:  # one bad request must not end the worker
            log.warning("%s failed: %s: %s", header.get("op"), type(exc).__name__, exc)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        wire.write_sync(out, {"id": header.get("id"), **reply})


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the wire, whatever a library prints
    return serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    sys.exit(main())
