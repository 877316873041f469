"""OPC UA driver: subscribes to (or polls) the variables of one OPC UA server — typically the
line PLC — and writes its command tags for MES write-back.

See ``README.md`` in this folder for configuration, node addressing, security and recovery, and
``example.yaml`` for a device entry.
"""

from typing import TYPE_CHECKING, Any

from drivers.base import Driver, DriverSpec
from drivers.opcua.config import (
    Deadband,
    Identity,
    NoSecurity,
    OpcUaDeviceConfig,
    OpcUaTag,
    SecureChannel,
)

if TYPE_CHECKING:
    from drivers.opcua.driver import OpcUaDriver

__all__ = [
    "OPCUA",
    "Deadband",
    "Identity",
    "NoSecurity",
    "OpcUaDeviceConfig",
    "OpcUaDriver",
    "OpcUaTag",
    "SecureChannel",
]


def _create(cfg: OpcUaDeviceConfig) -> Driver:
    # asyncua (~23 MB) is imported when an OPC UA device is made, not when saltgw starts: a
    # line without one does not pay for it (docs/performance.md, "Gateway memory")
    from drivers.opcua.driver import OpcUaDriver

    return OpcUaDriver(cfg)


def __getattr__(name: str) -> Any:
    if name == "OpcUaDriver":
        from drivers.opcua.driver import OpcUaDriver

        return OpcUaDriver
    raise AttributeError(name)


OPCUA = DriverSpec(
    name="opcua",
    config_model=OpcUaDeviceConfig,
    create=_create,
    description="OPC UA server (a PLC): subscription or polling, NodeIds or browse paths "
    "resolved again on every connect, security None / Basic256Sha256 / Aes128_Sha256_RsaOaep, "
    "user identity, writable command tags.",
    extra="opcua",
    requires=("asyncua",),
)
