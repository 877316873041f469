"""Device drivers for saltgw.

A driver is found through the ``saltgw.drivers`` entry point group; see :mod:`drivers.base`
for the seam every driver implements and :mod:`drivers.registry` for how they are found.

The names below are loaded from :mod:`drivers.base` on first use (PEP 562), not when the
package is imported: a camera's decode worker (``python -m drivers.camera.worker``) imports this
package and must not pay for pydantic (~17 MB; docs/performance.md, "Gateway memory").
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.base import (
        DeviceConfigBase,
        DeviceError,
        DeviceFault,
        DeviceOffline,
        Driver,
        DriverSpec,
        Reading,
        TagValue,
        WritableDriver,
        WriteRejected,
    )

__all__ = [
    "DeviceConfigBase",
    "DeviceError",
    "DeviceFault",
    "DeviceOffline",
    "Driver",
    "DriverSpec",
    "Reading",
    "TagValue",
    "WritableDriver",
    "WriteRejected",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from drivers import base

        return getattr(base, name)
    raise AttributeError(f"module 'drivers' has no attribute {name!r}")
