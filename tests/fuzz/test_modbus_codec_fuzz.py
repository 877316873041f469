"""Fuzzing the Modbus value codec (drivers/modbus/codec.py).

A PLC's registers can hold anything: every data type, byte order, word order, scale, offset,
bit and sanity range must turn arbitrary registers into a finite value inside the tag's range or
a :class:`DecodeError` whose message says why (NaN, infinity, out of range, bad string), never
another exception and never a NaN or an out-of-range value published as if it were read.
Values the encoder takes come back unchanged from the decoder; values it cannot take raise a
``ValueError`` that says so. A write (:func:`encode_tag`) of any value to any writable tag either
sends registers that read back as that value (within the type's precision) or is refused with a
``ValueError``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.modbus.codec import (
    DecodeError,
    apply_scaling,
    compile_decoder,
    decode_bits,
    decode_registers,
    decode_tag,
    encode_tag,
    encode_value,
)
from drivers.modbus.config import Order, TagConfig, TagType
from tests.fuzz.hypothesis_settings import fuzz_settings

ORDERS: list[Order] = ["big", "little"]
NUMERIC: list[TagType] = [
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"
]  # fmt: skip
TYPES: list[TagType] = ["bool", *NUMERIC, "string"]
WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
         "float32": 2, "float64": 4}  # fmt: skip
RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}

registers = st.integers(0, 0xFFFF)
#: what a buggy client library might hand over: out-of-range ints, bools, wrong counts
wild_registers = st.lists(registers | st.integers(-(2**33), 2**33) | st.booleans(), max_size=130)
any_float = st.floats(allow_nan=True, allow_infinity=True)


def check_value(value: Any, tag: TagConfig | None = None) -> None:
    """A decoded value is a plain JSON-able value: finite, and inside the tag's range."""
    assert isinstance(value, bool | int | float | str), value
    if isinstance(value, float):
        assert math.isfinite(value), value
    if tag is not None and not isinstance(value, bool | str):
        assert tag.min is None or value >= tag.min
        assert tag.max is None or value <= tag.max


def check_reason(exc: DecodeError) -> None:
    assert type(exc) is DecodeError and str(exc).strip(), exc


def check_refusal(exc: ValueError) -> None:
    """The encoder's own ValueError (not struct.error, OverflowError, UnicodeEncodeError)."""
    assert type(exc) is ValueError and str(exc).strip(), repr(exc)


@fuzz_settings(300)
@given(
    wild_registers,
    st.sampled_from(TYPES),
    st.sampled_from(ORDERS),
    st.sampled_from(ORDERS),
    st.none() | st.integers(-2, 130),
    st.none() | st.integers(-3, 20),
)
def test_any_registers_decode_to_a_finite_value_or_a_reason(
    regs: list[int], type_: TagType, byte_order: Order, word_order: Order, length: Any, bit: Any
) -> None:
    try:
        value = decode_registers(
            regs, type_, byte_order=byte_order, word_order=word_order, length=length, bit=bit
        )
    except DecodeError as exc:
        check_reason(exc)
    else:
        check_value(value)


@st.composite
def tags(draw: Any) -> TagConfig:
    """Every valid tag shape; parameters drawn from anything a YAML float can be."""
    table = draw(st.sampled_from(["holding_register", "input_register", "coil", "discrete_input"]))
    type_ = "bool" if table in ("coil", "discrete_input") else draw(st.sampled_from(TYPES))
    fields: dict[str, Any] = {"table": table, "address": draw(st.integers(0, 65000)), "type": type_}
    if type_ == "string":
        fields["length"] = draw(st.integers(1, 8))
    if type_ == "bool" and table.endswith("register") and draw(st.booleans()):
        fields["bit"] = draw(st.integers(0, 15))
    for key in ("byte_order", "word_order"):
        fields[key] = draw(st.none() | st.sampled_from(ORDERS))
    if type_ in NUMERIC:
        for key in ("scale", "offset", "min", "max"):
            if draw(st.booleans()):
                fields[key] = draw(any_float | st.integers(-(10**6), 10**6))
    try:
        return TagConfig.model_validate(fields)
    except ValidationError as exc:  # the config refuses NaN, inf, min > max …
        messages = " ".join(e["msg"] for e in exc.errors())
        assert messages.strip()
        return TagConfig.model_validate(
            {k: v for k, v in fields.items() if k not in ("scale", "offset", "min", "max")}
        )


@fuzz_settings(300)
@given(tags(), st.data(), st.sampled_from(ORDERS), st.sampled_from(ORDERS))
def test_a_configured_tag_gives_a_sane_value_or_a_reason(
    tag: TagConfig, data: st.DataObject, byte_order: Order, word_order: Order
) -> None:
    if tag.table in ("coil", "discrete_input"):
        raw: list[Any] = data.draw(st.lists(st.booleans() | st.integers(0, 1), max_size=3))
    else:
        width = tag.length if tag.length is not None else WIDTH[tag.type]
        raw = data.draw(
            st.lists(registers, min_size=width, max_size=width)
            | st.lists(registers, max_size=width + 2)  # a short or long slice
        )
    try:
        value = decode_tag(raw, tag, byte_order=byte_order, word_order=word_order)
    except DecodeError as exc:
        check_reason(exc)
    else:
        check_value(value, tag)


@fuzz_settings(400)
@given(tags(), st.data(), st.sampled_from(ORDERS), st.sampled_from(ORDERS))
def test_the_compiled_decoder_agrees_with_decode_tag(
    tag: TagConfig, data: st.DataObject, byte_order: Order, word_order: Order
) -> None:
    """The driver's per-tag decoders (worked out once per device) give what decode_tag gives,
    value for value and refusal for refusal, on any slice a client library might hand over."""
    if tag.table in ("coil", "discrete_input"):
        raw: list[Any] = data.draw(st.lists(st.booleans() | st.integers(0, 1), max_size=3))
    else:
        width = tag.length if tag.length is not None else WIDTH[tag.type]
        raw = data.draw(
            st.lists(registers, min_size=width, max_size=width)
            | st.lists(registers | st.integers(-5, 2**17) | st.booleans(), max_size=width + 2)
        )
    decode = compile_decoder(tag, byte_order=byte_order, word_order=word_order)
    try:
        expected = decode_tag(raw, tag, byte_order=byte_order, word_order=word_order)
    except DecodeError:
        with pytest.raises(DecodeError) as exc:
            decode(raw)
        check_reason(exc.value)
        return
    got = decode(raw)
    assert got == expected and type(got) is type(expected)


@fuzz_settings(250)
@given(
    st.booleans() | st.integers(-(2**32), 2**32) | st.integers() | any_float | st.text(max_size=4),
    any_float | st.integers(-(10**9), 10**9),
    any_float | st.integers(-(10**9), 10**9),
    st.none() | any_float,
    st.none() | any_float,
)
@example(5, 1.0, 0.0, math.nan, None)  # a NaN minimum let every value through unchecked
@example(math.nan, 1.0, 0.0, None, None)  # a NaN passed through when there was no scaling
@example(1e308, 10.0, 0.0, None, None)  # overflow to infinity after scaling
@example(10**400, 2.0, 0.0, None, None)  # an int beyond float range: OverflowError
def test_scaling_never_publishes_nan_or_out_of_range(
    value: Any, scale: float, offset: float, minimum: float | None, maximum: float | None
) -> None:
    try:
        got = apply_scaling(value, scale=scale, offset=offset, minimum=minimum, maximum=maximum)
    except DecodeError as exc:
        check_reason(exc)
        return
    if isinstance(value, bool | str):
        assert got is value
        return
    assert isinstance(got, int) or (isinstance(got, float) and math.isfinite(got))
    assert minimum is None or got >= minimum
    assert maximum is None or got <= maximum


def test_the_config_refuses_non_finite_scaling_and_ranges() -> None:
    for key in ("scale", "offset", "min", "max"):
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValidationError, match="finite number"):
                TagConfig.model_validate(
                    {"table": "holding_register", "address": 0, "type": "uint16", key: bad}
                )


@fuzz_settings(200)
@given(st.lists(st.booleans() | st.integers(0, 1), max_size=4))
def test_bits_decode_or_say_why(bits: list[Any]) -> None:
    try:
        assert decode_bits(bits) is bool(bits[0])
    except DecodeError as exc:
        check_reason(exc)
        assert len(bits) != 1


# -- encode → decode ----------------------------------------------------------------------------
def _value_for(type_: TagType) -> st.SearchStrategy[Any]:
    if type_ in RANGE:
        low, high = RANGE[type_]
        return st.integers(low, high)
    if type_ == "float32":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if type_ == "float64":
        return st.floats(allow_nan=False, allow_infinity=False)
    return st.booleans()


@fuzz_settings(250)
@given(
    st.sampled_from(["bool", *NUMERIC]), st.sampled_from(ORDERS), st.sampled_from(ORDERS), st.data()
)
def test_numbers_round_trip(
    type_: TagType, byte_order: Order, word_order: Order, data: st.DataObject
) -> None:
    value = data.draw(_value_for(type_))
    bit = data.draw(st.none() | st.integers(0, 15)) if type_ == "bool" else None
    regs = encode_value(value, type_, byte_order=byte_order, word_order=word_order, bit=bit)
    assert len(regs) == WIDTH[type_] and all(0 <= r <= 0xFFFF for r in regs)
    back = decode_registers(regs, type_, byte_order=byte_order, word_order=word_order, bit=bit)
    assert back == value and type(back) is type(value)


@fuzz_settings(300)
@given(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
    st.sampled_from(ORDERS),
    st.integers(0, 12),
)
def test_strings_round_trip_without_trailing_blanks(
    text: str, byte_order: Order, extra: int
) -> None:
    size = len(text.encode()) // 2 + 1 + extra
    regs = encode_value(text, "string", byte_order=byte_order, length=size)
    assert len(regs) == size
    assert decode_registers(regs, "string", byte_order=byte_order, length=size) == text.rstrip(" ")


@fuzz_settings(400)
@given(
    st.sampled_from(TYPES),
    st.integers(-(2**70), 2**70) | any_float | st.text(max_size=300) | st.booleans() | st.none(),
    st.sampled_from(ORDERS),
    st.none() | st.integers(-2, 20),
    st.none() | st.integers(0, 4),
)
@example("int16", 70000, "big", None, None)  # raised struct.error
@example("float32", 1e39, "big", None, None)  # raised OverflowError
@example("bool", True, "big", 16, None)  # raised struct.error
@example("string", "\ud800", "big", None, None)  # raised UnicodeEncodeError
@example("uint32", "12", "big", None, None)  # raised struct.error
def test_the_encoder_takes_a_value_or_says_it_does_not_fit(
    type_: TagType, value: Any, order: Order, bit: int | None, length: int | None
) -> None:
    try:
        regs = encode_value(
            value, type_, byte_order=order, word_order=order, bit=bit, length=length
        )
    except ValueError as exc:
        check_refusal(exc)
        return
    assert all(isinstance(r, int) and 0 <= r <= 0xFFFF for r in regs)


# -- writes: value -> registers of a writable tag ------------------------------------------------
@st.composite
def writable_tags(draw: Any) -> TagConfig:
    """Every writable tag shape: coils, and holding registers of each type, scaled or not."""
    if draw(st.booleans()):
        return TagConfig(table="coil", address=draw(st.integers(0, 65535)), type="bool",
                         writable=True)  # fmt: skip
    type_ = draw(st.sampled_from(["bool", *NUMERIC, "string"]))
    fields: dict[str, Any] = {
        "table": "holding_register", "address": draw(st.integers(0, 65000)), "type": type_,
        "writable": True, "byte_order": draw(st.none() | st.sampled_from(ORDERS)),
        "word_order": draw(st.none() | st.sampled_from(ORDERS)),
    }  # fmt: skip
    if type_ == "string":
        fields["length"] = draw(st.integers(1, 8))
    if type_ in NUMERIC and draw(st.booleans()):
        fields["scale"] = draw(st.sampled_from([0.1, 0.01, 2.0, 0.5, -1.0, 1e-9, 1e9, 3.0]))
        fields["offset"] = draw(st.sampled_from([0.0, -40.0, 273.15, 1e6]))
    if type_ in NUMERIC and draw(st.booleans()):
        fields["min"], fields["max"] = sorted(draw(st.lists(any_float.filter(math.isfinite),
                                                            min_size=2, max_size=2)))  # fmt: skip
    return TagConfig.model_validate(fields)


@fuzz_settings(500)
@given(
    writable_tags(),
    st.integers(-(2**70), 2**70) | any_float | st.text(max_size=20) | st.booleans(),
    st.sampled_from(ORDERS),
    st.sampled_from(ORDERS),
)
@example(TagConfig(table="holding_register", address=0, type="int16", scale=0.1, writable=True),
         12.34, "big", "big")  # fmt: skip
@example(TagConfig(table="holding_register", address=0, type="uint64", writable=True),
         2**64, "big", "little")  # fmt: skip
@example(TagConfig(table="holding_register", address=0, type="int64", writable=True),
         True, "big", "little")  # fmt: skip
@example(TagConfig(table="holding_register", address=0, type="float32", scale=2.0,
                   offset=273.15, writable=True), 0, "big", "big")  # fmt: skip
@example(TagConfig(table="holding_register", address=0, type="int64", scale=1e-9,
                   offset=1e6, writable=True), 0, "big", "big")  # fmt: skip
def test_a_write_reads_back_as_written_or_is_refused(
    tag: TagConfig, value: Any, byte_order: Order, word_order: Order
) -> None:
    try:
        out = encode_tag(value, tag, byte_order=byte_order, word_order=word_order)
    except ValueError as exc:
        check_refusal(exc)
        return
    if tag.table == "coil":
        assert isinstance(out, bool) and out is bool(value)
        return
    assert isinstance(out, list)
    assert len(out) == (tag.length or WIDTH[tag.type])
    assert all(isinstance(r, int) and 0 <= r <= 0xFFFF for r in out)
    back = decode_tag(out, tag, byte_order=byte_order, word_order=word_order)
    if isinstance(value, str):
        assert back == value.rstrip(" ")
    elif tag.type == "bool":
        assert back is bool(value)
    elif tag.type == "float32":  # float32 keeps ~7 significant digits of the raw value
        # (value - offset) / scale: its rounding shows at the scale of value - offset
        near = 1e-6 * (abs(value - tag.offset) + abs(tag.offset)) + abs(tag.scale) * 1e-6
        assert back == pytest.approx(value, rel=1e-6, abs=near + 1e-30)
    else:
        # an integer type: the raw integer, scaled, is the value (up to float rounding, also
        # of the offset: 1e6 + -1e15 * 1e-9 is -1.2e-10, not 0)
        near = abs(tag.scale) * 1e-5 + abs(tag.offset) * 1e-12
        assert back == pytest.approx(value, rel=1e-9, abs=near)
        if tag.scale == 1.0 and tag.offset == 0.0 and isinstance(value, int):
            assert back == value
