"""Modbus TCP/RTU driver: polls registers and bits of one device and decodes them into tags.

See ``README.md`` in this folder for configuration, byte/word orders and error mapping, and
``example.yaml`` for a device entry. pymodbus (the ``modbus`` extra) is imported when a device
is created, not to validate a config.
"""

from typing import TYPE_CHECKING, Any

from drivers.base import Driver, DriverSpec
from drivers.modbus.config import ModbusDeviceConfig, RtuConnection, TagConfig, TcpConnection

if TYPE_CHECKING:
    from drivers.modbus.driver import ModbusDriver

__all__ = [
    "MODBUS",
    "ModbusDeviceConfig",
    "ModbusDriver",
    "RtuConnection",
    "TagConfig",
    "TcpConnection",
]


def _create(cfg: ModbusDeviceConfig) -> Driver:
    from drivers.modbus.driver import ModbusDriver

    return ModbusDriver(cfg)


def __getattr__(name: str) -> Any:
    if name == "ModbusDriver":
        from drivers.modbus.driver import ModbusDriver

        return ModbusDriver
    raise AttributeError(name)


MODBUS = DriverSpec(
    name="modbus",
    config_model=ModbusDeviceConfig,
    create=_create,
    description="Modbus TCP or RTU device, polled at a steady interval; registers, coils and "
    "discrete inputs decoded into typed, scaled, range-checked tags.",
    extra="modbus",
    requires=("pymodbus", "serial"),
)
