"""Camera driver: QR codes decoded from a video device, an RTSP/HTTP stream or a watched folder
(OpenCV), with pyzbar and OpenCV's QR detectors behind cheap preprocessing — OpenCV's alone where
ZBar's native library (libzbar0) is not installed.

See ``README.md`` in this folder and ``example.yaml`` for a device entry. OpenCV and ZBar are
imported only when a camera is created (the ``camera`` extra), not to validate a config; and only
in the camera's decode worker (drivers/camera/worker.py), never in the gateway process.

The names below (the driver's spec and config models) are loaded on first use (PEP 562): the
decode worker imports this package and must not pay for pydantic (docs/performance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.base import DriverSpec
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

_CONFIG_NAMES = frozenset(__all__) - {"CAMERA"}


def _spec() -> DriverSpec:
    from drivers.base import DriverSpec
    from drivers.camera.config import CameraDeviceConfig

    def create(config: Any) -> Any:
        from drivers.camera.driver import CameraDriver

        return CameraDriver(config)

    return DriverSpec(
        name="camera",
        config_model=CameraDeviceConfig,
        create=create,
        description="Camera (video device, RTSP/HTTP stream or watched folder): QR codes "
        "decoded with pyzbar and OpenCV (OpenCV alone without libzbar0), one reading per image "
        "or per new code in view.",
        extra="camera",
        requires=("cv2", "numpy"),  # pyzbar too when libzbar0 loads; OpenCV alone otherwise
    )


def __getattr__(name: str) -> Any:
    if name == "CAMERA":
        spec = _spec()
        globals()["CAMERA"] = spec  # one spec, as a module-level constant would be
        return spec
    if name in _CONFIG_NAMES:
        from drivers.camera import config

        return getattr(config, name)
    raise AttributeError(f"module 'drivers.camera' has no attribute {name!r}")
