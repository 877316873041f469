"""Device drivers for saltgw.

A driver is found through the ``saltgw.drivers`` entry point group; see :mod:`drivers.base`
for the seam every driver implements and :mod:`drivers.registry` for how they are found.
"""

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
