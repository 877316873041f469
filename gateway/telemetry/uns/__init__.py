"""The UNS telemetry output: ``…/{line}/tags/{device}`` and retained ``…/{line}/tag/{device}/{tag}``
(README.md in this folder)."""

from gateway.telemetry.uns.output import UnsOutput, UnsStats, record_payload, tag_payload

__all__ = ["UnsOutput", "UnsStats", "record_payload", "tag_payload"]
