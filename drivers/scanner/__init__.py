"""Fixed code scanner driver: TCP client, TCP server or serial; CR / LF / CRLF / STX-ETX /
fixed-length framing; no-read markers; several codes per frame; garbage counted and skipped.

See ``README.md`` in this folder and ``example.yaml`` for a device entry.
"""

from drivers.base import DriverSpec
from drivers.scanner.config import (
    ScannerDeviceConfig,
    ScannerSerialLink,
    ScannerTcpClientLink,
    ScannerTcpServerLink,
)
from drivers.scanner.driver import ScannerDriver, split_codes
from drivers.scanner.framing import Frame, Framer

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

SCANNER = DriverSpec(
    name="scanner",
    config_model=ScannerDeviceConfig,
    create=ScannerDriver,
    description="Fixed code scanner (QR/barcode) on TCP (client or server) or a serial line: "
    "one reading per frame with the code(s) read, no-reads and rejected garbage.",
)
