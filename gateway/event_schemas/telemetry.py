"""The tag telemetry messages (gateway/telemetry/uns/): one per record of a device on
``…/tags/{device}``, and each tag's retained last value on ``…/tag/{device}/{tag}``."""

from __future__ import annotations

from gateway.event_schemas.messages import TS, Message
from gateway.event_schemas.spec import (
    Field,
    enum,
    integer,
    nullable,
    obj,
    string,
)

__all__ = ["TAG", "TAGS", "TELEMETRY_MESSAGES"]

VALUE = {"type": ["number", "integer", "boolean", "string", "null"]}
QUALITY = enum("good", "bad", "stale")

TAGS = Message(
    "tags",
    "tags/{device}",
    False,
    "Tag telemetry: one message per record, the tags of one read of the device that are "
    "reported now (by exception: past the deadband, min/max interval, or a change of "
    "quality; the device's `telemetry:` in the config). Delivered at least once, in `id` "
    "order: de-duplicate by `id`. When the telemetry store was full or too old during an "
    "outage, its oldest records arrive folded, one per device, holding the latest value of "
    "each of their tags (`coalesced`, `telemetry.when_full: coalesce`), or not at all "
    "(`drop_oldest`); both counted on `/metrics` (`saltgw_telemetry_records_removed`).",
    obj(
        Field("id", integer(minimum=1), "The record's id: strictly increasing per gateway."),
        Field("ts", TS, "When the device was read (for a folded record: the newest read)."),
        Field(
            "values",
            {"type": "object", "additionalProperties": VALUE},
            "Tag name → value, after the tag map's scaling; null for a `bad` tag.",
        ),
        Field(
            "quality",
            {"type": "object", "additionalProperties": QUALITY},
            "Tag name → quality, for the tags that are not `good` only: `bad` (the value "
            "could not be read; value null), `stale` (the device is offline or in fault; "
            "value: the last good one, null if there never was one).",
            required=False,
        ),
        Field(
            "coalesced",
            integer(minimum=2),
            "Present when the store's full/age policy folded this many records of the device "
            "into this one (the latest value of each of their tags).",
            required=False,
        ),
        title="saltgw tag telemetry record",
    ),
    {
        "id": 18231,
        "ts": "2026-11-22T10:15:30.123+08:00",
        "values": {"count": 1842, "weight_g": 401.25, "rejected": False},
    },
)

TAG = Message(
    "tag",
    "tag/{device}/{tag}",
    True,
    "Tag telemetry: a tag's last value. It follows the `tags` message, rate-limited: at "
    "most every `telemetry.retained_interval_ms` (5 s by default) with the latest value "
    "(intermediate values are on `tags/{device}` only); a change of quality at once.",
    obj(
        Field("value", VALUE, "The value, after the tag map's scaling; null when bad."),
        Field("ts", TS, "When it was read."),
        Field("quality", QUALITY, "good, bad or stale (see the tags message)."),
        Field("unit", nullable(string()), "The tag's unit, null when the config names none."),
        title="saltgw tag last value",
    ),
    {"value": 401.25, "ts": "2026-11-22T10:15:30.123+08:00", "quality": "good", "unit": "g"},
)

TELEMETRY_MESSAGES = (TAGS, TAG)
