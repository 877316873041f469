"""Configuration of one Modbus device: its link, its unit id, its poll cadence and its tags.

Register layout knobs (see ``README.md`` for the full story):

* ``byte_order`` — order of the two bytes inside each 16-bit register (``big``: high byte first,
  the Modbus norm);
* ``word_order`` — order of the registers of a 32/64-bit value (int32, uint32, float32; int64,
  uint64, float64) (``big``: most significant register at the lowest address; ``little``: least
  significant register first).

So float32 ``ABCD`` is big/big, ``CDAB`` big/little, ``BADC`` little/big, ``DCBA`` little/little.
Strings honour ``byte_order`` only: their registers are always read in address order.

Writes: a tag with ``writable: true`` (coils and holding registers only) may be written by the
gateway (MES command maps); ``write_function`` picks FC 5 or 15 for a coil, FC 6 or 16 for a
one-register tag (wider tags always FC 16).

``bool`` tags: on coils and discrete inputs a tag is one bit; on register tables ``bool`` means
"the register is not 0", or, with ``bit: n``, "bit n of the register is set" (status words).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drivers.base import DeviceConfigBase
from drivers.serial_line import SerialLineSettings

__all__ = [
    "BIT_TABLES",
    "MAX_READ_BITS",
    "MAX_READ_REGISTERS",
    "MAX_WRITE_REGISTERS",
    "WRITABLE_TABLES",
    "ModbusDeviceConfig",
    "Order",
    "RtuConnection",
    "SnapshotConfig",
    "Table",
    "TagConfig",
    "TagType",
    "TcpConnection",
    "register_count",
    "write_function",
]

Table = Literal["coil", "discrete_input", "holding_register", "input_register"]
TagType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Order = Literal["big", "little"]

BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete_input"})
WRITABLE_TABLES: frozenset[str] = frozenset({"coil", "holding_register"})
MAX_READ_REGISTERS = 125  # Modbus limit for one read of holding/input registers (FC 3/4)
MAX_READ_BITS = 2000  # Modbus limit for one read of coils/discrete inputs (FC 1/2)
MAX_WRITE_REGISTERS = 123  # Modbus limit for one write of holding registers (FC 16)

_FIXED_WIDTH: dict[str, int] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}
_NUMERIC: frozenset[str] = frozenset(
    {"int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"}
)

TagName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TcpConnection(BaseModel):
    """Modbus TCP to a device or a serial gateway."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: Literal["tcp"] = Field(description="Modbus TCP (MBAP framing over a TCP socket).")
    host: str = Field(min_length=1, description="Host name or IP address of the device or gateway.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP port of the device.")


class RtuConnection(SerialLineSettings):
    """Modbus RTU on a serial line (RS-485/RS-232)."""

    type: Literal["rtu"] = Field(description="Modbus RTU (binary framing on a serial line).")


Connection = Annotated[TcpConnection | RtuConnection, Field(discriminator="type")]


def register_count(tag: TagConfig) -> int:
    """How many table entries (registers, or bits on bit tables) ``tag`` occupies."""
    if tag.table in BIT_TABLES:
        return 1
    if tag.type == "string":
        assert tag.length is not None  # guaranteed by TagConfig's validator
        return tag.length
    return _FIXED_WIDTH[tag.type]


def write_function(tag: TagConfig) -> int:
    """The Modbus function code that writes ``tag``: its ``write_function``, else FC 5 for a
    coil, FC 6 for a one-register tag and FC 16 for wider ones."""
    if tag.write_function is not None:
        return tag.write_function
    if tag.table == "coil":
        return 5
    return 6 if register_count(tag) == 1 else 16


class TagConfig(BaseModel):
    """One value read from the device."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    table: Table = Field(
        description="Modbus table: holding_register (FC 3), input_register (FC 4), "
        "coil (FC 1) or discrete_input (FC 2)."
    )
    address: int = Field(
        ge=0, le=65535, description="Zero-based address of the first register (or bit)."
    )
    type: TagType = Field(
        description="Value type. Coils and discrete inputs hold only bool; on register tables "
        "bool means 'register is not 0'."
    )
    length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_READ_REGISTERS,
        description="Number of registers of a string (2 characters each); only for type string.",
    )
    bit: int | None = Field(
        default=None,
        ge=0,
        le=15,
        description="bool on a register table only: read this bit of the register (0 = least "
        "significant) instead of 'register is not 0'.",
    )
    byte_order: Order | None = Field(
        default=None, description="Byte order inside a register; none = the device's."
    )
    word_order: Order | None = Field(
        default=None,
        description="Register order of 32/64-bit values (big = most significant first); "
        "none = the device's.",
    )
    writable: bool = Field(
        default=False,
        description="The gateway may write this tag (MES command maps); coil and "
        "holding_register tags only. Writes to other tags are refused before they reach the "
        "device.",
    )
    write_function: Literal[5, 6, 15, 16] | None = Field(
        default=None,
        description="Function code of a write: 5 (write single coil) or 15 (write multiple "
        "coils) for a coil, 6 (write single register) or 16 (write multiple registers) for a "
        "one-register tag; wider tags are always written with 16. None: 5, 6 or 16. For devices "
        "that implement only the 'multiple' functions.",
    )
    scale: float = Field(
        default=1.0,
        allow_inf_nan=False,
        description="Numeric types only: published value = raw * scale + offset. Integers stay "
        "integers while scale is 1 and offset 0.",
    )
    offset: float = Field(
        default=0.0, allow_inf_nan=False, description="Numeric types only: added after scaling."
    )
    min: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Numeric types only: lowest sane value (after scaling); below is a tag error.",
    )
    max: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Numeric types only: highest sane value (after scaling); above is a tag error.",
    )

    @model_validator(mode="after")
    def _check(self) -> TagConfig:
        if self.table in BIT_TABLES and self.type != "bool":
            raise ValueError(f"a {self.table} holds one bit: type must be bool, not {self.type}")
        if self.bit is not None and (self.type != "bool" or self.table in BIT_TABLES):
            raise ValueError("bit applies to type bool on holding_register/input_register only")
        if self.type == "string" and self.length is None:
            raise ValueError("type string needs length (number of registers)")
        if self.type != "string" and self.length is not None:
            raise ValueError(f"length applies to type string only, not {self.type}")
        if self.type not in _NUMERIC:
            extra = [
                name
                for name, is_set in (
                    ("scale", self.scale != 1.0),
                    ("offset", self.offset != 0.0),
                    ("min", self.min is not None),
                    ("max", self.max is not None),
                )
                if is_set
            ]
            if extra:
                raise ValueError(f"{', '.join(extra)} apply to numeric types only, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.address + register_count(self) - 1 > 65535:
            raise ValueError(f"tag runs past address 65535 (address {self.address})")
        if self.writable or self.write_function is not None:
            self._check_write()
        return self

    def _check_write(self) -> None:
        if not self.writable:
            raise ValueError("write_function applies to writable tags only (add writable: true)")
        if self.table not in WRITABLE_TABLES:
            raise ValueError(
                f"a {self.table} is read-only in Modbus: only coil and holding_register tags "
                "can be writable"
            )
        if self.bit is not None:
            raise ValueError(
                "a bool with bit cannot be writable (writing one bit of a register would "
                "overwrite the others); map the command to a register or a coil of its own"
            )
        width = register_count(self)
        if self.table != "coil" and width > MAX_WRITE_REGISTERS:
            raise ValueError(
                f"a writable tag spans at most {MAX_WRITE_REGISTERS} registers (one FC 16 "
                f"request), not {width}"
            )
        allowed = (5, 15) if self.table == "coil" else (6, 16) if width == 1 else (16,)
        if self.write_function is not None and self.write_function not in allowed:
            kind = "a coil" if self.table == "coil" else f"a {width}-register {self.type}"
            raise ValueError(
                f"write_function {self.write_function} cannot write {kind} "
                f"(allowed: {', '.join(map(str, allowed))})"
            )


class SnapshotConfig(BaseModel):
    """How the driver keeps one reading to one state of the device across several requests."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    counter: TagName = Field(
        description="Tag that changes with every record the device makes (e.g. a weighing "
        "counter). Read first, re-read after the poll's other requests; when it moved the "
        "poll is read again. Default: the counter of the device's profile (checkweigher: "
        "its `count` role), when the device's tags need more than one request."
    )
    retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="How often one poll is read again when the counter moved during it; "
        "after that the poll is skipped (no reading) and counted.",
    )
    max_skipped: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Consecutive skipped polls after which the device is in fault (its "
        "counter moves during every poll: poll faster, or put its tags in one block).",
    )


class ModbusDeviceConfig(DeviceConfigBase):
    """A Modbus TCP or RTU device polled at a steady interval."""

    driver: Literal["modbus"] = Field(description="Selects the Modbus driver.")
    connection: Connection = Field(
        description="How to reach the device: {type: tcp, host, port} or "
        "{type: rtu, port, baudrate, bytesize, parity, stopbits}."
    )
    unit_id: int = Field(
        default=1, ge=0, le=247, description="Modbus unit (slave) id of the device."
    )
    poll_interval_ms: int = Field(
        default=200, gt=0, description="Time between the starts of two polls, in milliseconds."
    )
    timeout_ms: int = Field(
        default=1000, gt=0, description="How long to wait for a connection or a response (ms)."
    )
    byte_order: Order = Field(
        default="big", description="Default byte order inside a register for this device's tags."
    )
    word_order: Order = Field(
        default="little",
        description="Default register order of 32/64-bit values (little = least significant "
        "register first, 'CDAB').",
    )
    max_block_registers: int = Field(
        default=100,
        ge=1,
        le=MAX_READ_REGISTERS,
        description="Most registers fetched by one read request when tags are merged.",
    )
    max_block_gap: int = Field(
        default=10,
        ge=0,
        description="Most unused addresses between two tags that are still read in one request.",
    )
    tags: dict[TagName, TagConfig] = Field(
        min_length=1, description="Tags to read, by name (letters, digits, _; not leading digit)."
    )
    snapshot: SnapshotConfig | None = Field(
        default=None,
        description="Consistent readings across requests: `{counter: <tag>, retries: 3, "
        "max_skipped: 10}` (see the driver's README). None: the counter of the device's "
        "profile, if it has one.",
    )

    @field_validator("snapshot")
    @classmethod
    def _counter_is_a_tag(
        cls, value: SnapshotConfig | None, info: ValidationInfo
    ) -> SnapshotConfig | None:
        tags = info.data.get("tags")
        if value is not None and tags is not None and value.counter not in tags:
            known = ", ".join(sorted(tags))
            raise ValueError(f"snapshot counter {value.counter!r} is not a tag (tags: {known})")
        return value

    def with_snapshot_counter(self, tag: str) -> ModbusDeviceConfig:
        """This config with ``tag`` as the snapshot counter, unless it names one already (or
        has no such tag)."""
        if self.snapshot is not None or tag not in self.tags:
            return self
        return self.model_copy(update={"snapshot": SnapshotConfig(counter=tag)})

    @model_validator(mode="after")
    def _check_tag_widths(self) -> ModbusDeviceConfig:
        for name, tag in self.tags.items():
            width = register_count(tag)
            if tag.table not in BIT_TABLES and width > self.max_block_registers:
                raise ValueError(
                    f"tag {name!r} spans {width} registers, more than "
                    f"max_block_registers ({self.max_block_registers})"
                )
        return self

    def tag_names(self) -> set[str]:
        """Names of the tags this device yields."""
        return set(self.tags)
