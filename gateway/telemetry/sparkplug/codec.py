"""Encode and decode Sparkplug B payloads with the module generated from the specification's
``sparkplug_b.proto`` (README.md: how it was generated). Needs the ``sparkplug`` extra.

Integers: Int8/16/32 and UInt8/16/32 travel in ``int_value`` (uint32), Int64/UInt64 and
DateTime in ``long_value`` (uint64); signed values as two's complement of their width
(Sparkplug 3.0, 6.4.16)."""

from __future__ import annotations

from typing import Any

from gateway.telemetry.sparkplug import sparkplug_b_pb2 as pb
from gateway.telemetry.sparkplug.payload import DataType, Metric, Payload

__all__ = ["PayloadError", "decode", "encode"]

_INT32 = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32}
_UINT32 = {DataType.UINT8, DataType.UINT16, DataType.UINT32}
_LONG = {DataType.INT64, DataType.UINT64, DataType.DATETIME}
_STRING = {DataType.STRING, DataType.TEXT}


class PayloadError(ValueError):
    """A payload that is not a Sparkplug B protobuf, or a metric value that does not fit."""


def encode(payload: Payload) -> bytes:
    msg = pb.Payload()
    msg.timestamp = payload.timestamp
    if payload.seq is not None:
        msg.seq = payload.seq
    for m in payload.metrics:
        out = msg.metrics.add()
        if m.name is not None:
            out.name = m.name
        if m.alias is not None:
            out.alias = m.alias
        if m.timestamp is not None:
            out.timestamp = m.timestamp
        if m.name is not None and m.datatype != DataType.UNKNOWN:  # births: type with the name
            out.datatype = int(m.datatype)
        if m.is_historical:
            out.is_historical = True
        if m.value is None:
            out.is_null = True
        else:
            _set_value(out, m.datatype, m.value)
    return bytes(msg.SerializeToString())


def _set_value(out: Any, dt: DataType, value: object) -> None:
    if dt == DataType.BOOLEAN:
        out.boolean_value = bool(value)
    elif dt in _STRING:
        out.string_value = str(value)
    elif dt == DataType.DOUBLE:
        out.double_value = float(value)  # type: ignore[arg-type]
    elif dt == DataType.FLOAT:
        out.float_value = float(value)  # type: ignore[arg-type]
    elif dt in _LONG:
        out.long_value = int(value) & 0xFFFF_FFFF_FFFF_FFFF  # type: ignore[call-overload]
    elif dt in _INT32 or dt in _UINT32:
        out.int_value = int(value) & 0xFFFF_FFFF  # type: ignore[call-overload]
    else:
        raise PayloadError(f"cannot encode a value of Sparkplug data type {dt!r}")


def decode(raw: bytes, types: dict[str, DataType] | None = None) -> Payload:
    """A payload from bytes. A metric without a datatype (data and command messages) takes
    the one ``types`` gives for its name; raises :class:`PayloadError`."""
    msg = pb.Payload()
    try:
        msg.ParseFromString(raw)
    except Exception as exc:  # google.protobuf.message.DecodeError and friends
        raise PayloadError(f"not a Sparkplug B payload: {exc}") from None
    metrics = []
    for m in msg.metrics:
        name = m.name if m.HasField("name") else None
        dt_raw = m.datatype if m.HasField("datatype") else 0
        if not dt_raw and name is not None and types:
            dt_raw = int(types.get(name, 0))
        try:
            dt = DataType(dt_raw)
        except ValueError:
            raise PayloadError(f"metric {name!r}: unsupported data type {dt_raw}") from None
        metrics.append(
            Metric(
                name=name,
                alias=m.alias if m.HasField("alias") else None,
                datatype=dt,
                value=None if m.is_null else _value(m, dt, name),
                timestamp=m.timestamp if m.HasField("timestamp") else None,
                is_historical=m.is_historical,
            )
        )
    return Payload(
        timestamp=msg.timestamp,
        seq=msg.seq if msg.HasField("seq") else None,
        metrics=tuple(metrics),
    )


def _value(m: Any, dt: DataType, name: str | None) -> bool | int | float | str | None:
    kind = m.WhichOneof("value")
    if kind is None:
        return None
    raw = getattr(m, kind)
    if kind not in ("int_value", "long_value", "float_value", "double_value",
                    "boolean_value", "string_value"):  # fmt: skip
        raise PayloadError(f"metric {name!r}: {kind} values are not supported")
    if kind == "int_value" and dt in _INT32:
        bits = _INT32[dt]
        raw &= (1 << bits) - 1
        return int(raw - (1 << bits) if raw >= 1 << (bits - 1) else raw)
    if kind == "long_value" and dt == DataType.INT64:
        return int(raw - (1 << 64) if raw >= 1 << 63 else raw)
    return raw  # type: ignore[no-any-return]
