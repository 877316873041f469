"""Sparkplug B payloads as plain data (no protobuf here: :mod:`.codec` maps them to and from
the generated ``sparkplug_b_pb2``), and the metric data types saltgw uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from drivers.base import TagValue

__all__ = ["TYPE_OF", "DataType", "Metric", "Payload"]


class DataType(IntEnum):
    """``DataType`` of sparkplug_b.proto (the ones a metric's value may have here)."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14


#: a tag's value kind (TagMeta.type) -> its Sparkplug data type
TYPE_OF = {
    "bool": DataType.BOOLEAN,
    "int": DataType.INT64,
    "float": DataType.DOUBLE,
    "string": DataType.STRING,
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric. ``value`` None is sent as ``is_null``. A birth names every metric with its
    datatype and alias; data messages carry only the alias (no name, no datatype)."""

    name: str | None = None
    alias: int | None = None
    datatype: DataType = DataType.UNKNOWN
    value: TagValue | None = None
    timestamp: int | None = None  # ms since the epoch
    is_historical: bool = False


@dataclass(frozen=True, slots=True)
class Payload:
    timestamp: int  # ms since the epoch, at sending
    seq: int | None = None  # 0-255; None for NDEATH
    metrics: tuple[Metric, ...] = field(default_factory=tuple)
