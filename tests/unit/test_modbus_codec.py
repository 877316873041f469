"""drivers.modbus.codec: registers <-> typed values, orders, scaling, sanity checks."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.codec import (
    DecodeError,
    apply_scaling,
    decode_registers,
    decode_tag,
    encode_tag,
    encode_value,
)
from drivers.modbus.config import Order, TagConfig, TagType

ORDERS: list[tuple[Order, Order]] = [
    ("big", "big"),
    ("big", "little"),
    ("little", "big"),
    ("little", "little"),
]

# float32 123.456 is 0x42F6E979: bytes A=42 B=F6 C=E9 D=79
F32_REGS = {
    ("big", "big"): [0x42F6, 0xE979],  # ABCD
    ("big", "little"): [0xE979, 0x42F6],  # CDAB
    ("little", "big"): [0xF642, 0x79E9],  # BADC
    ("little", "little"): [0x79E9, 0xF642],  # DCBA
}


def test_known_float32_bytes() -> None:
    assert struct.pack(">f", 123.456).hex() == "42f6e979"


@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
def test_float32_in_each_order(byte_order: Order, word_order: Order) -> None:
    regs = F32_REGS[(byte_order, word_order)]
    value = decode_registers(regs, "float32", byte_order=byte_order, word_order=word_order)
    assert value == pytest.approx(123.456, abs=1e-4)
    assert encode_value(value, "float32", byte_order=byte_order, word_order=word_order) == regs


@pytest.mark.parametrize(
    ("type_", "regs", "expected"),
    [
        ("int16", [0xFFFE], -2),
        ("int16", [0x7FFF], 32767),
        ("uint16", [0xFFFE], 65534),
        ("int32", [0xFFFF, 0xFFFE], -2),
        ("int32", [0x8000, 0x0000], -(2**31)),
        ("uint32", [0x0001, 0x0002], 65538),
        ("uint32", [0xFFFF, 0xFFFF], 2**32 - 1),
        ("int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], -2),
        ("int64", [0x8000, 0, 0, 0], -(2**63)),
        ("int64", [0x0001, 0x0002, 0x0003, 0x0004], 0x0001000200030004),
        ("uint64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], 2**64 - 1),
        ("uint64", [0x0000, 0x018F, 0x125C, 0x7440], 1_714_000_000_064),
        ("float32", [0x3FC0, 0x0000], 1.5),
        ("float64", [0x4009, 0x21FB, 0x5444, 0x2D18], math.pi),
        ("bool", [0], False),
        ("bool", [0x0100], True),
    ],
)
def test_each_type_abcd(type_: TagType, regs: list[int], expected: object) -> None:
    value = decode_registers(regs, type_, byte_order="big", word_order="big")
    assert value == expected
    assert type(value) is type(expected)


def test_float64_word_little_reverses_all_four_registers() -> None:
    regs = [0x2D18, 0x5444, 0x21FB, 0x4009]
    assert decode_registers(regs, "float64", word_order="little") == math.pi


def test_int32_cdab_and_badc() -> None:
    # 0x12345678 = 305419896
    assert decode_registers([0x5678, 0x1234], "int32", word_order="little") == 0x12345678
    assert decode_registers([0x3412, 0x7856], "int32", byte_order="little") == 0x12345678


def test_bool_bit() -> None:
    assert decode_registers([0b10], "bool", bit=1) is True
    assert decode_registers([0b10], "bool", bit=0) is False
    # byte_order little: register 0x0100 is the value 0x0001 -> bit 0
    assert decode_registers([0x0100], "bool", byte_order="little", bit=0) is True
    assert encode_value(True, "bool", bit=3) == [8]


def test_string_strips_trailing_nuls_and_spaces() -> None:
    regs = encode_value("LOT-42", "string", length=6)
    assert regs[:3] == [0x4C4F, 0x542D, 0x3432]
    assert decode_registers(regs, "string", length=6) == "LOT-42"
    assert decode_registers([0x4142, 0x2020], "string") == "AB"


def test_string_byte_order_little_swaps_characters_but_not_registers() -> None:
    assert decode_registers([0x4241, 0x4443], "string", byte_order="little") == "ABCD"
    # word_order is ignored for strings
    assert decode_registers([0x4142, 0x4344], "string", word_order="little") == "ABCD"


def test_string_utf8() -> None:
    regs = encode_value("盐", "string", length=2)
    assert decode_registers(regs, "string", length=2) == "盐"


@pytest.mark.parametrize(
    ("regs", "reason"),
    [
        ([0xFFFE, 0x4100], "undecodable"),
        ([0x4100, 0x4200], "NUL"),
    ],
)
def test_bad_strings_are_errors(regs: list[int], reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_registers(regs, "string")


@pytest.mark.parametrize(
    "regs",
    [
        [0x7FC0, 0x0000],  # NaN
        [0xFFC0, 0x0001],  # another NaN
        [0x7F80, 0x0000],  # +inf
        [0xFF80, 0x0000],  # -inf
    ],
)
def test_nan_and_inf_are_not_a_number(regs: list[int]) -> None:
    with pytest.raises(DecodeError, match="not a number"):
        decode_registers(regs, "float32", word_order="big")


def test_wrong_register_count_is_an_error() -> None:
    with pytest.raises(DecodeError, match="needs 2 register"):
        decode_registers([1], "uint32")
    with pytest.raises(DecodeError, match="needs 4 register"):
        decode_registers([1, 2, 3], "string", length=4)


def test_out_of_range_register_is_an_error() -> None:
    with pytest.raises(DecodeError, match="16-bit"):
        decode_registers([0x10000], "uint16")
    with pytest.raises(DecodeError, match="16-bit"):
        decode_registers([-1], "int16")


def test_scaling_and_offset() -> None:
    assert apply_scaling(1234, scale=0.1, offset=-3.0) == pytest.approx(120.4)
    assert apply_scaling(7) == 7
    assert type(apply_scaling(7)) is int
    assert isinstance(apply_scaling(7, scale=2.0), float)
    assert apply_scaling(True, scale=2.0) is True
    assert apply_scaling("x", offset=2.0) == "x"


def test_min_max() -> None:
    assert apply_scaling(5, minimum=5, maximum=5) == 5
    with pytest.raises(DecodeError, match="below min 10"):
        apply_scaling(9.5, minimum=10)
    with pytest.raises(DecodeError, match="above max 2000"):
        apply_scaling(2001, maximum=2000)
    # the range applies after scaling
    with pytest.raises(DecodeError, match="above max 100"):
        apply_scaling(1001, scale=0.1, maximum=100)


def test_scaling_overflow_is_not_a_number() -> None:
    with pytest.raises(DecodeError, match="not a number"):
        apply_scaling(1e308, scale=10.0)


def test_decode_tag_uses_device_defaults_and_tag_overrides() -> None:
    tag = TagConfig(table="holding_register", address=0, type="float32", scale=2.0)
    regs = F32_REGS[("big", "little")]
    assert decode_tag(regs, tag, byte_order="big", word_order="little") == pytest.approx(246.912)
    tag_abcd = TagConfig(table="input_register", address=0, type="float32", word_order="big")
    value = decode_tag(F32_REGS[("big", "big")], tag_abcd, byte_order="big", word_order="little")
    assert value == pytest.approx(123.456, abs=1e-4)
    coil = TagConfig(table="coil", address=3, type="bool")
    assert decode_tag([True], coil, byte_order="big", word_order="little") is True


def test_decode_tag_min_max_error() -> None:
    tag = TagConfig(table="holding_register", address=0, type="uint16", max=500)
    with pytest.raises(DecodeError, match="above max 500"):
        decode_tag([612], tag, byte_order="big", word_order="big")


# --- properties --------------------------------------------------------------------------

orders = st.sampled_from(ORDERS)


@given(st.integers(-(2**31), 2**31 - 1), orders)
def test_int32_round_trips(value: int, order: tuple[Order, Order]) -> None:
    regs = encode_value(value, "int32", byte_order=order[0], word_order=order[1])
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_registers(regs, "int32", byte_order=order[0], word_order=order[1]) == value


@given(st.integers(0, 2**32 - 1), orders)
def test_uint32_round_trips(value: int, order: tuple[Order, Order]) -> None:
    regs = encode_value(value, "uint32", byte_order=order[0], word_order=order[1])
    assert decode_registers(regs, "uint32", byte_order=order[0], word_order=order[1]) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), orders)
def test_float32_round_trips(value: float, order: tuple[Order, Order]) -> None:
    regs = encode_value(value, "float32", byte_order=order[0], word_order=order[1])
    assert decode_registers(regs, "float32", byte_order=order[0], word_order=order[1]) == value


TYPES: list[TagType] = [
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "float32",
    "float64",
    "string",
]


@given(
    st.lists(st.integers(-5, 0x1_0005) | st.integers(0, 0xFFFF), max_size=6),
    st.sampled_from(TYPES),
    orders,
    st.none() | st.integers(0, 6),
    st.none() | st.integers(-2, 17),
)
def test_decoding_anything_returns_a_value_or_decode_error(
    regs: list[int],
    type_: TagType,
    order: tuple[Order, Order],
    length: int | None,
    bit: int | None,
) -> None:
    try:
        value = decode_registers(
            regs, type_, byte_order=order[0], word_order=order[1], length=length, bit=bit
        )
    except DecodeError as exc:
        reason = str(exc)
    else:
        reason = ""
        assert isinstance(value, bool | int | float | str)
        if isinstance(value, float):
            assert math.isfinite(value)
    assert reason or value is not None


# -- 64-bit integers ------------------------------------------------------------------------------
@pytest.mark.parametrize(("byte_order", "word_order"), ORDERS)
def test_uint64_in_each_order(byte_order: Order, word_order: Order) -> None:
    """0x0102030405060708: ABCD-style orders extended to four registers."""
    expected = {
        ("big", "big"): [0x0102, 0x0304, 0x0506, 0x0708],
        ("big", "little"): [0x0708, 0x0506, 0x0304, 0x0102],
        ("little", "big"): [0x0201, 0x0403, 0x0605, 0x0807],
        ("little", "little"): [0x0807, 0x0605, 0x0403, 0x0201],
    }[(byte_order, word_order)]
    value = 0x0102030405060708
    assert encode_value(value, "uint64", byte_order=byte_order, word_order=word_order) == expected
    back = decode_registers(expected, "uint64", byte_order=byte_order, word_order=word_order)
    assert back == value and isinstance(back, int)


def test_int64_is_exact_beyond_float_precision() -> None:
    value = 2**53 + 1  # not representable as a float
    regs = encode_value(value, "int64", word_order="big")
    assert decode_registers(regs, "int64", word_order="big") == value


@pytest.mark.parametrize(("type_", "value"), [("int64", 2**63), ("int64", -(2**63) - 1),
                                              ("uint64", -1), ("uint64", 2**64)])  # fmt: skip
def test_64_bit_out_of_range_is_refused(type_: TagType, value: int) -> None:
    with pytest.raises(ValueError, match=f"does not fit {type_}"):
        encode_value(value, type_)


# -- writes: encode_tag ----------------------------------------------------------------------------
def wtag(**fields: object) -> TagConfig:
    return TagConfig.model_validate(
        {"table": "holding_register", "address": 10, "writable": True, **fields}
    )


def test_encode_tag_undoes_scaling_and_offset() -> None:
    tag = wtag(type="int16", scale=0.1, offset=-40.0)
    assert encode_tag(25.5, tag, byte_order="big", word_order="big") == [655]
    assert encode_tag(-43.2, tag, byte_order="big", word_order="big") == [(-32) & 0xFFFF]
    tenths = wtag(type="uint16", scale=0.1)
    assert encode_tag(0.3, tenths, byte_order="big", word_order="big") == [3]


@pytest.mark.parametrize(
    ("fields", "value", "reason"),
    [
        ({"type": "int16", "scale": 0.1}, 12.34, r"does not scale to a whole int16.*123\.39"),
        ({"type": "uint16"}, 2.5, "not a whole number"),
        ({"type": "uint16"}, -1, "does not fit uint16"),
        ({"type": "int16"}, 40000, "does not fit int16"),
        ({"type": "int16", "scale": 10.0}, 400000, "does not fit int16"),
        ({"type": "uint64"}, 2**64, "does not fit uint64"),
        ({"type": "int64"}, True, "not a number"),
        ({"type": "uint32"}, "12", "not a number"),
        ({"type": "float32"}, math.nan, "not a finite number"),
        ({"type": "float32"}, 1e39, "does not fit float32"),
        ({"type": "uint16", "min": 0, "max": 100}, 101, "above the tag's max 100"),
        ({"type": "int32", "min": -5}, -6, "below the tag's min -5"),
        ({"type": "bool"}, 2, "not a bool"),
        ({"type": "bool"}, "yes", "not a bool"),
        ({"type": "string", "length": 2}, "ABCDE", "does not fit 2 registers"),
        ({"type": "string", "length": 2}, 12, "not a string"),
        ({"type": "string", "length": 4}, "A\x00B", "NUL"),
    ],
)
def test_encode_tag_refuses_what_it_cannot_write_exactly(
    fields: dict[str, object], value: object, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        encode_tag(value, wtag(**fields), byte_order="big", word_order="big")  # type: ignore[arg-type]


def test_encode_tag_refuses_a_value_that_would_read_back_out_of_range() -> None:
    """In range as written, but the float32 it becomes reads back below min."""
    tag = wtag(type="float32", scale=0.1, offset=273.15, min=0.0)
    with pytest.raises(ValueError, match="would read back as an invalid value: below min"):
        encode_tag(0, tag, byte_order="big", word_order="big")


def test_encode_tag_uses_device_orders_unless_the_tag_overrides() -> None:
    assert encode_tag(0x00010002, wtag(type="uint32"), byte_order="big", word_order="little") == [
        0x0002,
        0x0001,
    ]
    tag = wtag(type="uint32", word_order="big")
    assert encode_tag(0x00010002, tag, byte_order="big", word_order="little") == [0x0001, 0x0002]


def test_encode_tag_coil_is_a_bit_and_strings_pad_with_nul() -> None:
    coil = TagConfig(table="coil", address=3, type="bool", writable=True)
    assert encode_tag(True, coil, byte_order="big", word_order="big") is True
    assert encode_tag(0, coil, byte_order="big", word_order="big") is False
    text = wtag(type="string", length=3)
    assert encode_tag("B7", text, byte_order="big", word_order="big") == [0x4237, 0, 0]
