"""Modbus TCP/RTU driver: polls registers and bits of one device and decodes them into tags.

See ``README.md`` in this folder for configuration, byte/word orders and error mapping, and
``example.yaml`` for a device entry.
"""

from drivers.base import DriverSpec
from drivers.modbus.config import ModbusDeviceConfig, RtuConnection, TagConfig, TcpConnection
from drivers.modbus.driver import ModbusDriver

__all__ = [
    "MODBUS",
    "ModbusDeviceConfig",
    "ModbusDriver",
    "RtuConnection",
    "TagConfig",
    "TcpConnection",
]

MODBUS = DriverSpec(
    name="modbus",
    config_model=ModbusDeviceConfig,
    create=ModbusDriver,
    description="Modbus TCP or RTU device, polled at a steady interval; registers, coils and "
    "discrete inputs decoded into typed, scaled, range-checked tags.",
)
