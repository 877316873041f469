"""The ``sparkplug:`` section (Sparkplug B output, spBv1.0): README.md beside this file."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SparkplugConfig"]

# a Sparkplug id is one topic level: no '/', '+', '#' (Sparkplug 3.0, 4.1.1)
ID_PATTERN = r"^[^/+#]+$"


class SparkplugConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    group_id: str = Field(
        default="saltgw",
        pattern=ID_PATTERN,
        description="Sparkplug group id: the second level of every spBv1.0 topic.",
    )
    node_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Edge node id (third level after the message type); default: gateway.id.",
    )
    primary_host_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Primary host application id: when set, births and data are published "
        "only while spBv1.0/STATE/{id} says the host is online (Sparkplug 3.0); meanwhile the "
        "telemetry store holds the data, sent afterwards flagged is_historical.",
    )
    client_id: str | None = Field(
        default=None,
        description="MQTT client id of the Sparkplug connection (its own, beside the "
        "gateway's); default: saltgw-{gateway id}-sparkplug.",
    )
    state_file: Path | None = Field(
        default=None,
        description="Where bdSeq and the metric aliases are kept across restarts; default: "
        "sparkplug-{group_id}-{node_id}.json in the gateway's state directory.",
    )
    dcmd_writes: bool = Field(
        default=False,
        description="Carry out DCMD writes: only to tags of the device's command map (its "
        "profile's commands:), and only when the gateway's commands: section is mode open "
        "(a DCMD carries no issuer or signature). Refused and logged otherwise.",
    )
