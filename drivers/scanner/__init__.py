"""Fixed code scanner driver: TCP client, TCP server or serial; CR / LF / CRLF / STX-ETX /
fixed-length framing; no-read markers; several codes per frame; garbage counted and skipped.

See ``README.md`` in this folder and ``example.yaml`` for a device entry. pyserial (the
``scanner`` extra) is imported when a scanner is created, not to validate a config.
"""

from typing import TYPE_CHECKING, Any

from drivers.base import Driver, DriverSpec
from drivers.scanner.config import (
    ScannerDeviceConfig,
    ScannerSerialLink,
    ScannerTcpClientLink,
    ScannerTcpServerLink,
)
from drivers.scanner.framing import Frame, Framer

if TYPE_CHECKING:
    from drivers.scanner.driver import ScannerDriver, split_codes

__all__ = [
    "SCANNER",
    "Frame",
    "Framer",
    "ScannerDeviceConfig",
    "ScannerDriver",
    "ScannerSerialLink",
    "ScannerTcpClientLink",
    "ScannerTcpServerLink",
    "split_codes",
]


def _create(cfg: ScannerDeviceConfig) -> Driver:
    from drivers.scanner.driver import ScannerDriver

    return ScannerDriver(cfg)


def __getattr__(name: str) -> Any:
    if name in ("ScannerDriver", "split_codes"):
        from drivers.scanner import driver

        return getattr(driver, name)
    raise AttributeError(name)


SCANNER = DriverSpec(
    name="scanner",
    config_model=ScannerDeviceConfig,
    create=_create,
    description="Fixed code scanner (QR/barcode) on TCP (client or server) or a serial line: "
    "one reading per frame with the code(s) read, no-reads and rejected garbage.",
    extra="scanner",
    requires=("serial",),
)
