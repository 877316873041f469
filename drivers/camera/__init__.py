"""Camera driver: QR codes decoded from a video device, an RTSP/HTTP stream or a watched folder
(OpenCV), with pyzbar and OpenCV's QR detectors behind cheap preprocessing — OpenCV's alone where
ZBar's native library (libzbar0) is not installed.

See ``README.md`` in this folder and ``example.yaml`` for a device entry. OpenCV and ZBar are
imported only when a camera is created (the ``camera`` extra), not to validate a config.
"""

from __future__ import annotations

from typing import Any

from drivers.base import Driver, DriverSpec
from drivers.camera.config import (
    CameraDeviceConfig,
    CameraDeviceSource,
    CameraFolderSource,
    CameraStreamSource,
)

__all__ = [
    "CAMERA",
    "CameraDeviceConfig",
    "CameraDeviceSource",
    "CameraFolderSource",
    "CameraStreamSource",
]


def _create(config: Any) -> Driver:
    from drivers.camera.driver import CameraDriver

    return CameraDriver(config)


CAMERA = DriverSpec(
    name="camera",
    config_model=CameraDeviceConfig,
    create=_create,
    description="Camera (video device, RTSP/HTTP stream or watched folder): QR codes decoded "
    "with pyzbar and OpenCV (OpenCV alone without libzbar0), one reading per image or per new "
    "code in view.",
    extra="camera",
    requires=("cv2", "numpy"),  # pyzbar too when libzbar0 loads; OpenCV alone otherwise
)
