"""Turn raw Modbus registers into tag values and back (pure functions, no I/O).

Every decoding failure raises :class:`DecodeError` (a ``ValueError``) whose message is the
reason published for the tag ("not a number (NaN)", "above max 500.0: 612.5", ...). Nothing
else escapes :func:`decode_registers`, :func:`apply_scaling` or :func:`decode_tag`, whatever the
input. :func:`encode_value` and :func:`encode_tag` raise only ``ValueError`` (a value that does
not fit the type, its range or its scaling).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from drivers.base import TagValue
from drivers.modbus.config import BIT_TABLES, Order, TagConfig, TagType

__all__ = [
    "DecodeError",
    "TagDecoder",
    "apply_scaling",
    "compile_decoder",
    "decode_bits",
    "decode_registers",
    "decode_tag",
    "encode_tag",
    "encode_value",
    "registers_from_bytes",
    "registers_to_bytes",
    "unscale",
]

# struct format (big-endian) and register count of each fixed-width numeric type
_STRUCT: dict[str, tuple[str, int]] = {
    "int16": (">h", 1),
    "uint16": (">H", 1),
    "int32": (">i", 2),
    "uint32": (">I", 2),
    "int64": (">q", 4),
    "uint64": (">Q", 4),
    "float32": (">f", 2),
    "float64": (">d", 4),
}


class DecodeError(ValueError):
    """A register value that cannot become a tag value; the message is the reason."""


def registers_to_bytes(registers: Sequence[int], byte_order: Order, word_order: Order) -> bytes:
    """Bytes of ``registers`` in most-significant-first order.

    ``word_order="little"`` means the registers arrive least significant first, so they are
    reversed; ``byte_order="little"`` swaps the two bytes of every register.
    """
    for reg in registers:
        if not isinstance(reg, int) or not 0 <= reg <= 0xFFFF:
            raise DecodeError(f"register value {reg!r} is not a 16-bit unsigned integer")
    ordered = reversed(registers) if word_order == "little" else registers
    fmt = "<H" if byte_order == "little" else ">H"
    return b"".join(struct.pack(fmt, reg) for reg in ordered)


def registers_from_bytes(data: bytes, byte_order: Order, word_order: Order) -> list[int]:
    """Inverse of :func:`registers_to_bytes` (``data`` has an even length)."""
    fmt = "<H" if byte_order == "little" else ">H"
    regs = [struct.unpack_from(fmt, data, i)[0] for i in range(0, len(data), 2)]
    return regs[::-1] if word_order == "little" else regs


def _check_count(registers: Sequence[int], expected: int, type_: str) -> None:
    if len(registers) != expected:
        raise DecodeError(f"{type_} needs {expected} register(s), got {len(registers)}")


def decode_registers(
    registers: Sequence[int],
    type_: TagType,
    *,
    byte_order: Order = "big",
    word_order: Order = "big",
    length: int | None = None,
    bit: int | None = None,
) -> TagValue:
    """Decode the raw value of a tag (before scaling) from its registers.

    ``bool`` is one register, true when not 0 (or, with ``bit``, when that bit is set; bit 0 is
    the least significant bit of the register after ``byte_order``). ``string`` takes
    ``length`` registers (default: all given), decodes UTF-8 (so plain ASCII) after stripping
    trailing NULs and spaces; a NUL left inside, or bytes that are not UTF-8, are errors.
    Floats that are NaN or infinite are errors ("not a number").
    """
    if type_ == "bool":
        _check_count(registers, 1, type_)
        word: int = struct.unpack(">H", registers_to_bytes(registers, byte_order, word_order))[0]
        if bit is None:
            return word != 0
        if not 0 <= bit <= 15:
            raise DecodeError(f"bit {bit} is not in 0..15")
        return bool(word >> bit & 1)
    if type_ == "string":
        _check_count(registers, len(registers) if length is None else length, type_)
        raw = registers_to_bytes(registers, byte_order, "big").rstrip(b"\x00 ")
        if b"\x00" in raw:
            raise DecodeError(f"string has a NUL byte before its end: {raw!r}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"undecodable string (not UTF-8): {raw!r}") from exc
    try:
        fmt, count = _STRUCT[type_]
    except KeyError:
        raise DecodeError(f"unknown type {type_!r}") from None
    _check_count(registers, count, type_)
    data = registers_to_bytes(registers, byte_order, word_order)
    value: int | float = struct.unpack(fmt, data)[0]
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError(f"not a number ({value!r} in {type_})")
    return value


def apply_scaling(
    value: TagValue,
    *,
    scale: float = 1.0,
    offset: float = 0.0,
    minimum: float | None = None,
    maximum: float | None = None,
) -> TagValue:
    """``value * scale + offset`` for numbers (ints stay ints when there is nothing to apply),
    then the ``minimum``/``maximum`` sanity range; bools and strings pass through untouched."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError(f"not a number ({value!r})")
    for name, param in (("scale", scale), ("offset", offset), ("min", minimum), ("max", maximum)):
        if param is not None and not math.isfinite(param):
            raise DecodeError(f"tag {name} is not a finite number ({param!r})")
    if scale != 1.0 or offset != 0.0:
        try:
            value = value * scale + offset
        except OverflowError:  # an int beyond float range
            value = math.inf
        if not math.isfinite(value):
            raise DecodeError(f"not a number after scaling ({value!r})")
    if minimum is not None and value < minimum:
        raise DecodeError(f"below min {minimum}: {value}")
    if maximum is not None and value > maximum:
        raise DecodeError(f"above max {maximum}: {value}")
    return value


def decode_bits(bits: Sequence[bool]) -> bool:
    """The value of a bool tag on a coil or discrete input (exactly one bit)."""
    if len(bits) != 1:
        raise DecodeError(f"bool needs 1 bit, got {len(bits)}")
    return bool(bits[0])


def decode_tag(
    raw: Sequence[int] | Sequence[bool],
    tag: TagConfig,
    *,
    byte_order: Order,
    word_order: Order,
) -> TagValue:
    """Decode, scale and range-check one tag. ``raw`` is its slice of a block read (bits for
    coil/discrete_input tags, registers otherwise); ``byte_order``/``word_order`` are the
    device's defaults, overridden by the tag's own."""
    if tag.table in BIT_TABLES:
        return decode_bits([bool(b) for b in raw])
    value = decode_registers(
        raw,
        tag.type,
        byte_order=tag.byte_order or byte_order,
        word_order=tag.word_order or word_order,
        length=tag.length,
        bit=tag.bit,
    )
    return apply_scaling(
        value, scale=tag.scale, offset=tag.offset, minimum=tag.min, maximum=tag.max
    )


TagDecoder = Callable[[Sequence[int] | Sequence[bool]], TagValue]


def compile_decoder(tag: TagConfig, *, byte_order: Order, word_order: Order) -> TagDecoder:
    """A function doing what :func:`decode_tag` does for ``tag`` with these device defaults,
    with the struct formats worked out once: a poll of hundreds of numeric tags spends its time
    here. Same values, and a :class:`DecodeError` for the same inputs."""
    if tag.table in BIT_TABLES or tag.type not in _STRUCT:

        def general(raw: Sequence[int] | Sequence[bool]) -> TagValue:
            return decode_tag(raw, tag, byte_order=byte_order, word_order=word_order)

        return general
    fmt, count = _STRUCT[tag.type]
    pack = struct.Struct(("<" if (tag.byte_order or byte_order) == "little" else ">") + "H" * count)
    unpack = struct.Struct(fmt)
    reverse = count > 1 and (tag.word_order or word_order) == "little"
    is_float = fmt[-1] in "fd"
    plain = tag.scale == 1.0 and tag.offset == 0.0 and tag.min is None and tag.max is None
    type_ = tag.type

    def numeric(raw: Sequence[int] | Sequence[bool]) -> TagValue:
        if len(raw) != count:
            raise DecodeError(f"{type_} needs {count} register(s), got {len(raw)}")
        try:
            data = pack.pack(*(raw[::-1] if reverse else raw))
        except struct.error:
            registers_to_bytes(raw, "big", "big")  # raises the DecodeError naming the register
            raise DecodeError(f"registers {list(raw)!r} are not 16-bit unsigned integers") from None
        value: int | float = unpack.unpack(data)[0]
        if is_float and not math.isfinite(value):
            raise DecodeError(f"not a number ({value!r} in {type_})")
        if plain:
            return value
        return apply_scaling(
            value, scale=tag.scale, offset=tag.offset, minimum=tag.min, maximum=tag.max
        )

    return numeric


def encode_value(
    value: TagValue,
    type_: TagType,
    *,
    byte_order: Order = "big",
    word_order: Order = "big",
    length: int | None = None,
    bit: int | None = None,
) -> list[int]:
    """Registers holding ``value`` as ``type_`` (the inverse of :func:`decode_registers`; used
    by simulators and tests). Strings are NUL-padded to ``length`` registers. A value that does
    not fit ``type_`` (out of range, wrong kind, a string too long) raises ``ValueError``."""
    if type_ == "bool":
        if bit is not None and not 0 <= bit <= 15:
            raise ValueError(f"bit {bit} is not in 0..15")
        flag = (1 << bit) if bit is not None else 1
        return registers_from_bytes(struct.pack(">H", flag if value else 0), byte_order, "big")
    if type_ == "string":
        try:
            data = str(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"string {value!r} is not encodable as UTF-8: {exc.reason}") from None
        size = 2 * (length if length is not None else (len(data) + 1) // 2)
        if len(data) > size:
            raise ValueError(f"string of {len(data)} bytes does not fit {size // 2} registers")
        return registers_from_bytes(data.ljust(size, b"\x00"), byte_order, "big")
    try:
        fmt, _count = _STRUCT[type_]
    except KeyError:
        raise ValueError(f"unknown type {type_!r}") from None
    if isinstance(value, str) or (fmt[-1] not in "fd" and not isinstance(value, int)):
        raise ValueError(f"{value!r} is not a {type_} value")
    try:
        data = struct.pack(fmt, value)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{value!r} does not fit {type_} ({exc})") from None
    return registers_from_bytes(data, byte_order, word_order)


#: how far (in raw units) an unscaled value may sit from an integer and still count as exact:
#: float noise such as 0.3 / 0.1 = 2.9999999999999996, never a real fraction
_EXACT = 1e-6


def unscale(value: TagValue, tag: TagConfig) -> int | float | bool | str:
    """The raw value whose decoding gives ``value`` (the inverse of :func:`apply_scaling`):
    ``(value - offset) / scale``, an ``int`` for integer types. Refuses (``ValueError``) a value
    of the wrong kind, outside the tag's ``min``/``max``, or that no raw integer scales to."""
    if tag.type == "bool":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise ValueError(f"{value!r} is not a bool (true/false, or 0/1)")
    if tag.type == "string":
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        if "\x00" in value:
            raise ValueError(f"string {value!r} has a NUL character")
        return value
    if isinstance(value, bool | str):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    if tag.min is not None and value < tag.min:
        raise ValueError(f"{value!r} is below the tag's min {tag.min}")
    if tag.max is not None and value > tag.max:
        raise ValueError(f"{value!r} is above the tag's max {tag.max}")
    raw: int | float = value
    if tag.scale != 1.0 or tag.offset != 0.0:
        raw = (value - tag.offset) / tag.scale
    if tag.type in ("float32", "float64"):
        return float(raw)
    if isinstance(raw, int):
        return raw
    nearest = round(raw)
    if abs(raw - nearest) > _EXACT:
        if raw == value:
            raise ValueError(f"{value!r} is not a whole number (type {tag.type})")
        raise ValueError(
            f"{value!r} does not scale to a whole {tag.type}: ({value!r} - offset "
            f"{tag.offset:g}) / scale {tag.scale:g} = {raw!r}"
        )
    return int(nearest)


def encode_tag(
    value: TagValue, tag: TagConfig, *, byte_order: Order, word_order: Order
) -> list[int] | bool:
    """What to send to write ``value`` to ``tag``: the bit of a coil, else the tag's
    registers (``byte_order``/``word_order`` are the device's defaults, overridden by the
    tag's). Raises ``ValueError`` naming why ``value`` cannot be written exactly."""
    raw = unscale(value, tag)
    if tag.table in BIT_TABLES:
        assert isinstance(raw, bool)
        return raw
    regs = encode_value(
        raw,
        tag.type,
        byte_order=tag.byte_order or byte_order,
        word_order=tag.word_order or word_order,
        length=tag.length,
        bit=tag.bit,
    )
    try:  # what the gateway itself would then read: rounding may cross min/max
        decode_tag(regs, tag, byte_order=byte_order, word_order=word_order)
    except DecodeError as exc:
        raise ValueError(f"{value!r} would read back as an invalid value: {exc}") from None
    return regs
