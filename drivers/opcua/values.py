"""OPC UA values ↔ tag values.

Reading: a node's value becomes an ``int``, ``float``, ``bool`` or ``str`` (LocalizedText → its
text, DateTime → RFC 3339); NaN/±Inf, arrays, nulls and structures are tag errors, never values.

Writing: a tag value is converted to the node's own VariantType (learnt on connect) with range
checks, so the PLC never receives an Int32 where it holds a Byte; anything that does not fit
raises :class:`drivers.base.WriteRejected` naming the tag, node, type and value.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from asyncua import ua

from drivers.base import TagValue, WriteRejected

__all__ = ["INTEGER_RANGES", "NUMERIC_TYPES", "to_tag_value", "to_variant"]

#: Inclusive ranges of the OPC UA integer types.
INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOATS = frozenset({ua.VariantType.Float, ua.VariantType.Double})
#: Types a deadband applies to.
NUMERIC_TYPES = frozenset(INTEGER_RANGES) | _FLOATS
_FLOAT32_MAX = struct.unpack(">f", bytes.fromhex("7f7fffff"))[0]


def to_tag_value(value: Any) -> TagValue:
    """A node's value as a tag value; raises ValueError with the reason when it has none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("not a number (NaN)")
        if math.isinf(value):
            raise ValueError(f"infinite value ({value})")
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, datetime):
        ts = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return ts.isoformat(timespec="milliseconds")
    if value is None:
        raise ValueError("null value (the node holds no value)")
    if isinstance(value, list | tuple):
        raise ValueError(f"an array of {len(value)} elements (arrays are not supported)")
    if isinstance(value, bytes | bytearray):
        raise ValueError("a ByteString (not supported)")
    raise ValueError(f"a {type(value).__name__} (not supported: numbers, booleans, strings only)")


def to_variant(value: TagValue, vtype: ua.VariantType, where: str) -> ua.Variant:
    """``value`` as a Variant of the node's type ``vtype``; ``where`` names tag and node for the
    error message."""

    def refuse(why: str) -> WriteRejected:
        return WriteRejected(f"cannot write {value!r} to {where} ({vtype.name}): {why}")

    if vtype == ua.VariantType.Boolean:
        if isinstance(value, bool):
            return ua.Variant(value, vtype)
        if isinstance(value, int) and value in (0, 1):
            return ua.Variant(bool(value), vtype)
        raise refuse("expected true/false (or 0/1)")
    if vtype in INTEGER_RANGES:
        lo, hi = INTEGER_RANGES[vtype]
        if isinstance(value, bool):
            raise refuse("expected an integer, not a boolean")
        if isinstance(value, float):
            if not value.is_integer():
                raise refuse("expected an integer")
            value = int(value)
        if not isinstance(value, int):
            raise refuse("expected an integer")
        if not lo <= value <= hi:
            raise refuse(f"out of range {lo}..{hi}")
        return ua.Variant(value, vtype)
    if vtype in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse("expected a number")
        number = float(value)
        if not math.isfinite(number):
            raise refuse("not a finite number")
        if vtype == ua.VariantType.Float and abs(number) > _FLOAT32_MAX:
            raise refuse("out of the range of a 32-bit float")
        return ua.Variant(number, vtype)
    if vtype == ua.VariantType.String:
        if not isinstance(value, str):
            raise refuse("expected a string")
        return ua.Variant(value, vtype)
    if vtype == ua.VariantType.LocalizedText:
        if not isinstance(value, str):
            raise refuse("expected a string")
        return ua.Variant(ua.LocalizedText(value), vtype)
    raise refuse("writing this type is not supported (numbers, booleans and strings only)")
