"""Configuration of one fixed code scanner: its link, its framing and its no-read markers."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.base import DeviceConfigBase
from drivers.serial_line import SerialLineSettings

__all__ = [
    "READING_TAGS",
    "Framing",
    "ScannerDeviceConfig",
    "ScannerSerialLink",
    "ScannerTcpClientLink",
    "ScannerTcpServerLink",
    "is_loopback",
]

Framing = Literal["cr", "lf", "crlf", "stx_etx", "fixed"]

#: The tags of every scanner reading (see README.md, "Readings").
READING_TAGS: frozenset[str] = frozenset({"codes", "noread", "raw", "frames", "rejected"})


class ScannerTcpClientLink(BaseModel):
    """The gateway connects to the scanner (the scanner is a TCP server)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: Literal["tcp_client"] = Field(description="We connect to the scanner's TCP server.")
    host: str = Field(min_length=1, description="Host name or IP address of the scanner.")
    port: int = Field(ge=1, le=65535, description="TCP port of the scanner's data channel.")


class ScannerTcpServerLink(BaseModel):
    """The scanner connects to the gateway (the scanner is a TCP client)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: Literal["tcp_server"] = Field(description="We listen; the scanner connects to us.")
    listen_host: str = Field(
        default="0.0.0.0", min_length=1, description="Address to listen on for the scanner."
    )
    port: int = Field(ge=1, le=65535, description="TCP port to listen on.")
    allow_peers: list[str] = Field(
        default_factory=list,
        description="IP addresses or networks (CIDR) the scanner connects from; a connection "
        "from any other address is closed unread (logged, counted). Required when listen_host "
        "is not a loopback address; none = loopback peers only.",
        examples=[["192.168.10.40"], ["192.168.10.0/28"]],
    )
    accept_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description="How long one connect attempt waits for the scanner to connect (ms); then "
        "the device is offline and the supervisor retries with backoff.",
    )

    @field_validator("allow_peers")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. "
                    "192.168.10.40 or 192.168.10.0/28; host names are not accepted)"
                ) from None
        return v

    @model_validator(mode="after")
    def _peers_needed(self) -> ScannerTcpServerLink:
        if not self.allow_peers and not is_loopback(self.listen_host):
            raise ValueError(
                f"listen_host {self.listen_host} accepts connections from the network: name the "
                "scanner's address in allow_peers (e.g. allow_peers: [192.168.10.40]); anyone "
                "else who connects could send codes as the scanner"
            )
        return self

    def peer_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The networks a connection may come from (loopback when allow_peers is empty)."""
        given = self.allow_peers or ["127.0.0.0/8", "::1"]
        return [ipaddress.ip_network(p, strict=False) for p in given]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ScannerSerialLink(SerialLineSettings):
    """RS-232/RS-485 (or any pyserial URL, e.g. socket://host:port or rfc2217://…)."""

    type: Literal["serial"] = Field(description="A serial line, opened with pyserial.")


ScannerLink = Annotated[
    ScannerTcpClientLink | ScannerTcpServerLink | ScannerSerialLink, Field(discriminator="type")
]


class ScannerDeviceConfig(DeviceConfigBase):
    """A fixed (line) code scanner sending one frame per trigger: code(s) or a no-read marker."""

    driver: Literal["scanner"] = Field(description="Selects the fixed code scanner driver.")
    connection: ScannerLink = Field(
        description="How the scanner is reached: {type: tcp_client, host, port}, "
        "{type: tcp_server, listen_host, port, allow_peers} or {type: serial, port, baudrate, …}."
    )
    framing: Framing = Field(
        default="crlf",
        description="How frames end: cr, lf, crlf (a terminator after each frame), stx_etx "
        "(STX … ETX around each frame) or fixed (every frame frame_length bytes).",
    )
    frame_length: int | None = Field(
        default=None, ge=1, le=4096, description="Bytes per frame; for framing fixed only."
    )
    max_frame_bytes: int = Field(
        default=512,
        ge=8,
        le=65536,
        description="Longest frame accepted; a longer one is rejected as garbage (counted).",
    )
    frame_timeout_ms: int = Field(
        default=1000,
        gt=0,
        description="A started frame not completed within this time is rejected (the scanner's "
        "framing does not match `framing`).",
    )
    separator: str | None = Field(
        default=None,
        min_length=1,
        max_length=4,
        description="Text between several codes in one frame (multi-code reads), e.g. ';'; "
        "none = one code per frame.",
    )
    noread_markers: list[str] = Field(
        default_factory=lambda: ["NoRead", "NOREAD", "NG", "ERROR"],
        description="Frames meaning 'triggered but nothing read' (compared ignoring case).",
    )
    encoding: Literal["utf-8", "ascii", "latin-1", "gb18030"] = Field(
        default="utf-8", description="Text encoding of the frames."
    )
    connect_timeout_ms: int = Field(
        default=3000, gt=0, description="How long to wait for a TCP connection or serial open."
    )
    idle_timeout_ms: int | None = Field(
        default=None,
        gt=0,
        description="No byte for this long means the link is dead (offline, reconnect); none = "
        "wait for ever (a scanner is silent while the line stands still).",
    )

    @model_validator(mode="after")
    def _check(self) -> ScannerDeviceConfig:
        if self.framing == "fixed" and self.frame_length is None:
            raise ValueError("framing fixed needs frame_length")
        if self.framing != "fixed" and self.frame_length is not None:
            raise ValueError(f"frame_length applies to framing fixed only, not {self.framing}")
        if self.frame_length is not None and self.frame_length > self.max_frame_bytes:
            raise ValueError(
                f"frame_length ({self.frame_length}) exceeds max_frame_bytes "
                f"({self.max_frame_bytes})"
            )
        return self

    def tag_names(self) -> set[str]:
        """The tags of every scanner reading."""
        return set(READING_TAGS)
