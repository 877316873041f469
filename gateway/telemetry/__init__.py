"""Tag telemetry: the raw values the drivers read, published beside the domain events.

The seam (:mod:`gateway.telemetry.record`) is what every telemetry output reads: records of
tag values, kept in a store of their own (never in the way of the traceability journal), each
output with its own delivery cursor.
"""

from gateway.telemetry.record import (
    Quality,
    TagMeta,
    TagPoint,
    TagRecord,
    TelemetryFeed,
    TelemetryOutput,
)

__all__ = ["Quality", "TagMeta", "TagPoint", "TagRecord", "TelemetryFeed", "TelemetryOutput"]
