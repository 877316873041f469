"""OPC UA driver: subscribes to (or polls) the variables of one OPC UA server — typically the
line PLC — and writes its command tags for MES write-back.

See ``README.md`` in this folder for configuration, node addressing, security and recovery, and
``example.yaml`` for a device entry.
"""

from drivers.base import DriverSpec
from drivers.opcua.config import (
    Deadband,
    Identity,
    NoSecurity,
    OpcUaDeviceConfig,
    OpcUaTag,
    SecureChannel,
)
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

OPCUA = DriverSpec(
    name="opcua",
    config_model=OpcUaDeviceConfig,
    create=OpcUaDriver,
    description="OPC UA server (a PLC): subscription or polling, NodeIds or browse paths "
    "resolved again on every connect, security None / Basic256Sha256 / Aes128_Sha256_RsaOaep, "
    "user identity, writable command tags.",
)
