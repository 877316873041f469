"""Configuration of one code-reading camera: where its frames come from and how they are read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.base import DeviceConfigBase
from drivers.camera.limits import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS, ImageLimits
from drivers.camera.strategies import KNOWN_STRATEGIES

__all__ = [
    "CAMERA_TAGS",
    "CameraDeviceConfig",
    "CameraDeviceSource",
    "CameraFolderSource",
    "CameraStreamSource",
]

#: The tags of every camera reading (README.md, "Readings").
CAMERA_TAGS: frozenset[str] = frozenset(
    {"codes", "noread", "raw", "frames", "rejected", "strategy", "decode_ms"}
)


class CameraFolderSource(BaseModel):
    """Image files dropped into a folder (a smart camera's FTP/SMB upload, a test rig)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: Literal["folder"] = Field(description="Watch a folder for new image files.")
    path: Path = Field(description="The folder the camera writes its images to.")
    patterns: list[str] = Field(
        default_factory=lambda: ["*.png", "*.jpg", "*.jpeg", "*.bmp"],
        min_length=1,
        description="File name patterns of images (others are ignored).",
    )
    poll_ms: int = Field(default=200, ge=10, description="How often the folder is listed (ms).")
    settle_ms: int = Field(
        default=100,
        ge=0,
        description="A file modified less than this long ago may still be being written: wait.",
    )
    after: Literal["move", "delete", "keep"] = Field(
        default="move",
        description="What happens to an image once read: move (into done_dir), delete, or keep "
        "(remembered in memory only: read again after a restart).",
    )
    done_dir: Path | None = Field(
        default=None, description="Where read images go with after: move; default path/done."
    )


class CameraDeviceSource(BaseModel):
    """A local video device (V4L2 /dev/videoN, a USB camera)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: Literal["device"] = Field(description="A local video device, by index.")
    index: int = Field(default=0, ge=0, description="Device index (0 = /dev/video0).")
    width: int | None = Field(default=None, gt=0, description="Requested frame width, px.")
    height: int | None = Field(default=None, gt=0, description="Requested frame height, px.")


class CameraStreamSource(BaseModel):
    """A network stream (RTSP, HTTP MJPEG) or a video file, opened with OpenCV."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: Literal["stream"] = Field(description="An RTSP/HTTP stream (or a video file).")
    url: str = Field(
        min_length=1,
        description="rtsp://…, http(s)://… or a file path; credentials in the URL are never "
        "logged.",
        examples=["rtsp://192.168.10.40:554/stream1"],
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if "://" in v and v.split("://", 1)[0].lower() not in ("rtsp", "rtsps", "http", "https"):
            raise ValueError(f"expected an rtsp://, http(s):// URL or a file path; got {v!r}")
        return v


CameraSource = Annotated[
    CameraFolderSource | CameraDeviceSource | CameraStreamSource, Field(discriminator="type")
]


class CameraDeviceConfig(DeviceConfigBase):
    """A camera whose frames are decoded for QR codes (drivers/camera/decoder.py)."""

    driver: Literal["camera"] = Field(description="Selects the camera driver.")
    source: CameraSource = Field(
        description="Where frames come from: {type: folder, path}, {type: device, index} or "
        "{type: stream, url}."
    )
    frame_interval_ms: int = Field(
        default=100,
        ge=0,
        description="Video: decode at most one frame per this interval (frames in between are "
        "dropped); 0 = every frame.",
    )
    repeat_window_ms: int = Field(
        default=1500,
        ge=0,
        description="Video: the same code(s) seen again within this time are the same bag "
        "still in view, not a new reading.",
    )
    decode_budget_ms: int = Field(
        default=250,
        gt=0,
        description="No further decode strategy starts after this long on one frame.",
    )
    strategies: list[str] | None = Field(
        default=None,
        description="Decode strategies in order (drivers/camera/decoder.py); none = the measured "
        "cascade of the decoder in use (ZBar, or OpenCV alone where ZBar is not installed). "
        "Without ZBar, ZBar strategies are skipped (one warning).",
    )
    open_timeout_ms: int = Field(
        default=5000, gt=0, description="How long opening a device or stream may take (ms)."
    )
    max_image_bytes: int = Field(
        default=DEFAULT_MAX_IMAGE_BYTES,
        ge=1024,
        description="Folder: a larger image file is refused unread (logged, counted in "
        "rejected, moved like any image).",
    )
    max_image_pixels: int = Field(
        default=DEFAULT_MAX_IMAGE_PIXELS,
        ge=10_000,
        description="Folder: an image whose header declares more pixels (width × height) is "
        "refused before it is decoded; files that are not PNG, JPEG or BMP are refused too.",
    )

    @field_validator("strategies")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            unknown = [s for s in v if s not in KNOWN_STRATEGIES]
            if unknown or not v:
                known = ", ".join(KNOWN_STRATEGIES)
                raise ValueError(f"unknown strategies {unknown}; known: {known}")
        return v

    def image_limits(self) -> ImageLimits:
        return ImageLimits(self.max_image_bytes, self.max_image_pixels)

    def tag_names(self) -> set[str]:
        """The tags of every camera reading."""
        return set(CAMERA_TAGS)
