"""The settings of a serial line (RS-232/RS-485, or a pyserial URL), one definition for every
driver that opens one: Modbus RTU and serial code scanners. A driver's link model subclasses
:class:`SerialLineSettings` and adds its discriminating ``type``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SerialLineSettings"]


class SerialLineSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    port: str = Field(
        min_length=1,
        description="Serial device, e.g. /dev/ttyUSB0, or a pyserial URL like socket://host:port.",
        examples=["/dev/ttyUSB0"],
    )
    baudrate: int = Field(default=9600, gt=0, description="Line speed in bit/s.")
    bytesize: Literal[7, 8] = Field(default=8, description="Data bits per character.")
    parity: Literal["N", "E", "O"] = Field(
        default="N", description="Parity: N (none), E (even) or O (odd)."
    )
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits per character.")
