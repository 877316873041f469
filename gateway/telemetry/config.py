"""The top-level ``telemetry:`` section, and each device's telemetry settings resolved per tag.

The per-device ``telemetry:`` field is :class:`drivers.telemetry.DeviceTelemetry` (a field of
every device entry); :func:`device_plan` turns it and the device's tag map into the tags to
report (:class:`gateway.telemetry.record.TagMeta`) and each tag's :class:`TagPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import DeviceConfigBase
from drivers.telemetry import DeviceTelemetry
from gateway.telemetry.record import TagMeta

__all__ = ["TagPolicy", "TelemetrySection", "device_plan", "plan_errors", "store_path"]


class TelemetrySection(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    store: Path | None = Field(
        default=None,
        description="SQLite file of the telemetry store (its own file, never the journal's); "
        "default: beside journal.path, named '<journal stem>-telemetry.db'.",
    )
    max_records: int = Field(
        default=200_000,
        ge=10,
        description="Most undelivered records kept (one record: one device's reported tags "
        "of one read); past it the when_full policy applies.",
    )
    max_age_secs: float | None = Field(
        default=3600.0,
        gt=0,
        description="Undelivered records older than this are folded or dropped by the "
        "when_full policy; null: no age bound.",
    )
    when_full: Literal["coalesce", "drop_oldest"] = Field(
        default="coalesce",
        description="What happens to the oldest records past max_records or max_age_secs: "
        "'coalesce' folds them into one record per device holding the latest value of each "
        "tag (intermediate values are lost, the last value of every tag is kept); "
        "'drop_oldest' deletes them. Both counted as intentional on /metrics.",
    )
    uns: bool = Field(
        default=True,
        description="Publish …/{line}/tags/{device} (one message per record) and the "
        "retained …/{line}/tag/{device}/{tag} (last values) on the gateway's broker.",
    )
    retained_interval_ms: int = Field(
        default=5000,
        ge=0,
        le=3_600_000,
        description="The retained per-tag topics carry a tag's latest value at most this "
        "often (the per-device topic carries every reported value); 0: on every change.",
    )


def store_path(section: TelemetrySection, journal_path: Path) -> Path:
    """The store's file: configured, else ``<journal stem>-telemetry.db`` beside the journal."""
    if section.store is not None:
        return section.store
    return journal_path.with_name(f"{journal_path.stem}-telemetry.db")


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """One tag's report-by-exception settings (the device's, with the tag's overrides)."""

    deadband: float = 0.0
    deadband_percent: float | None = None
    min_interval_secs: float = 0.0
    max_interval_secs: float | None = None  # None: never report an unchanged value again


def _policy(t: DeviceTelemetry, tag: str) -> TagPolicy:
    o = t.overrides.get(tag)
    deadband = o.deadband if o and o.deadband is not None else t.deadband
    percent = o.deadband_percent if o and o.deadband_percent is not None else t.deadband_percent
    if o and o.deadband is not None and o.deadband_percent is None:
        percent = None  # the tag's own absolute deadband replaces the device's percent
    min_ms = o.min_interval_ms if o and o.min_interval_ms is not None else t.min_interval_ms
    max_s = o.max_interval_secs if o and o.max_interval_secs is not None else t.max_interval_secs
    return TagPolicy(deadband, percent, min_ms / 1000.0, max_s or None)


def plan_errors(dev: DeviceConfigBase) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with a device's ``telemetry:`` against its tag map, as (location within
    the device entry, message): unknown tags, a device without telemetry tags, tags whose
    type the tag map does not say."""
    t = dev.telemetry
    if t is None:
        return []
    kinds = {k.name: k for k in dev.telemetry_tags()}
    if not kinds:
        return [
            (
                ("telemetry",),
                f"device {dev.id!r} (driver {dev.driver}) has no tags telemetry can report: "
                "its readings are codes, published as events",
            )
        ]
    out: list[tuple[tuple[str | int, ...], str]] = []
    have = ", ".join(kinds)
    if isinstance(t.tags, list):
        for j, name in enumerate(t.tags):
            if name not in kinds:
                out.append((("telemetry", "tags", j), f"no tag {name!r} (tags: {have})"))
    for name in t.overrides:
        if name not in kinds:
            out.append((("telemetry", "overrides", name), f"no tag {name!r} (tags: {have})"))
    for name in _selected(t, list(kinds)):
        if name in kinds and kinds[name].type is None:
            out.append(
                (
                    ("tags", name),
                    f"telemetry needs the type of tag {name!r} (its births and schema declare "
                    "it): add type: to the tag",
                )
            )
    return out


def _selected(t: DeviceTelemetry, names: list[str]) -> list[str]:
    return names if t.tags == "all" else list(t.tags)


def device_plan(dev: DeviceConfigBase) -> tuple[list[TagMeta], dict[str, TagPolicy]]:
    """The tags of ``dev`` telemetry reports (tag-map order for ``all``, else the list's) and
    each one's policy; empty without ``telemetry:``. The config is assumed checked
    (:func:`plan_errors`); a tag without a known type is declared ``float``."""
    t = dev.telemetry
    if t is None:
        return [], {}
    kinds = {k.name: k for k in dev.telemetry_tags()}
    metas: list[TagMeta] = []
    policies: dict[str, TagPolicy] = {}
    for name in _selected(t, list(kinds)):
        kind = kinds.get(name)
        if kind is None:
            continue
        o = t.overrides.get(name)
        unit = kind.unit or (o.unit if o else None)
        metas.append(TagMeta(dev.id, name, kind.type or "float", unit))
        policies[name] = _policy(t, name)
    return metas, policies
