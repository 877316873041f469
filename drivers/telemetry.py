"""What every device entry may say about tag telemetry (``telemetry:``), and what a driver's
tag map tells telemetry about its tags (:class:`TagKind`).

This lives beside the driver seam (not in :mod:`gateway.telemetry`) because it is a field of
:class:`drivers.base.DeviceConfigBase`: every driver has it, none has to know about it. The
gateway's side (filter, store, outputs) is in :mod:`gateway.telemetry`.

Report by exception (docs/events.md, "Tag telemetry"): a tag is reported when its value moved
by more than the deadband since it was last reported, but not more often than
``min_interval_ms``, and at least every ``max_interval_secs`` even if unchanged; a change of
quality (good / bad / stale) is always reported.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DeviceTelemetry", "TagKind", "TagTelemetry", "ValueType", "value_type"]

ValueType = Literal["bool", "int", "float", "string"]


class TagKind(NamedTuple):
    """A tag as the tag map declares it: its value's kind after scaling, and its unit."""

    name: str
    type: ValueType | None  # None: the tag map does not say (an OPC UA tag without ``type:``)
    unit: str | None = None


_BOOL = {"bool", "boolean"}
_INT = {"int16", "uint16", "int32", "uint32", "int64", "uint64", "sbyte", "byte", "int8", "uint8"}
_FLOAT = {"float32", "float64", "float", "double", "real", "lreal"}
_STRING = {"string", "localizedtext", "datetime"}


def value_type(type_name: str | None, scaled: bool = False) -> ValueType | None:
    """The value's kind for a tag map's type name (Modbus ``uint16``, OPC UA ``Double``, …);
    a scaled integer is a ``float``. None for a name it does not know (or None)."""
    if type_name is None:
        return None
    t = type_name.lower()
    if t in _BOOL:
        return "bool"
    if t in _INT:
        return "float" if scaled else "int"
    if t in _FLOAT:
        return "float"
    if t in _STRING:
        return "string"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class TagTelemetry(_Strict):
    """Per-tag settings: each one given replaces the device's."""

    deadband: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="Absolute deadband in the tag's unit (numbers only): a change of at most "
        "this much is not reported.",
    )
    deadband_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Deadband in percent of the last reported value (numbers only).",
    )
    min_interval_ms: int | None = Field(
        default=None, ge=0, description="Never report the tag more often than this."
    )
    max_interval_secs: float | None = Field(
        default=None,
        ge=0,
        description="Report the tag at least this often even if unchanged (0: never).",
    )
    unit: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="The tag's unit, published with its value, where the tag map names none "
        "(a Modbus tag map has no unit field); the tag map's unit otherwise wins.",
    )


class DeviceTelemetry(_Strict):
    """Which tags of the device are published as telemetry, and how often (docs/events.md)."""

    tags: Literal["all"] | list[str] = Field(
        default="all",
        description="`all` the tags of the device's tag map, or a list of tag names.",
    )
    deadband: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Absolute deadband in the tag's unit (numbers only); 0: every change.",
    )
    deadband_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Deadband in percent of the last reported value (numbers only); used "
        "instead of `deadband` when set.",
    )
    min_interval_ms: int = Field(
        default=0, ge=0, description="Never report a tag more often than this; 0: no limit."
    )
    max_interval_secs: float | None = Field(
        default=60.0,
        ge=0,
        description="Report each tag at least this often even if unchanged (a heartbeat); "
        "0 or null: only on change.",
    )
    overrides: dict[str, TagTelemetry] = Field(
        default_factory=dict, description="Per tag: settings that replace the device's."
    )

    @model_validator(mode="after")
    def _unique(self) -> DeviceTelemetry:
        if isinstance(self.tags, list):
            dup = sorted({t for t in self.tags if self.tags.count(t) > 1})
            if dup:
                raise ValueError(f"tags listed twice: {', '.join(dup)}")
        return self
