"""The MQTT topic tree of the contract:
``{prefix}/{enterprise}/{site}/{line}/{category}/{name}``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    enterprise: str
    site: str
    line: str
    gateway: str

    @property
    def line_root(self) -> str:
        return f"{self.prefix}/{self.enterprise}/{self.site}/{self.line}"

    def event(self, event_type: str) -> str:
        """``…/alarm/{kind}`` for alarms, ``…/event/{group}/{kind}`` for every other type."""
        group, kind = event_type.split(".", 1)
        if group == "alarm":
            return f"{self.line_root}/alarm/{kind}"
        return f"{self.line_root}/event/{group}/{kind}"

    def state(self, device: str) -> str:
        return f"{self.line_root}/state/{device}"

    def commands(self) -> str:
        """Filter of every device's command topic, ``…/{line}/cmd/+`` (docs/commands.md)."""
        return f"{self.line_root}/cmd/+"

    def command_response(self, device: str) -> str:
        return f"{self.line_root}/cmd/{device}/response"

    def records(self) -> str:
        """Filter of the record topics MES and LIMS publish on, ``…/{line}/record/+``
        (docs/records.md)."""
        return f"{self.line_root}/record/+"

    def record(self, kind: str) -> str:
        return f"{self.line_root}/record/{kind}"

    def record_response(self, kind: str) -> str:
        return f"{self.line_root}/record/{kind}/response"

    def tags(self, device: str) -> str:
        """Tag telemetry, one message per record of ``device`` (docs/events.md)."""
        return f"{self.line_root}/tags/{device}"

    def tag(self, device: str, tag: str) -> str:
        """Tag telemetry: the retained last value of one tag."""
        return f"{self.line_root}/tag/{device}/{tag}"

    def kpi(self) -> str:
        return f"{self.line_root}/kpi"

    def status(self) -> str:
        return f"{self.prefix}/{self.enterprise}/{self.site}/gateway/{self.gateway}/status"

    def status_broker(self) -> str:
        """Retained ``{"gateway", "broker", "endpoint", "endpoints", "switches"}``: the broker
        endpoint the gateway's session is on (mqtt.urls, docs/scaling.md), published on every
        connect beside ``online``."""
        return f"{self.status()}/broker"

    def seq_mark(self) -> str:
        """Retained ``{"gateway", "last_seq", "ts"}``: the highest ``seq`` the broker has
        acknowledged, so a bridge notices events lost at the tail (docs/architecture.md)."""
        return f"{self.prefix}/{self.enterprise}/{self.site}/gateway/{self.gateway}/seq"

    def chain_head(self) -> str:
        """Retained ``{"gateway", "seq", "hash", "alg"}``: the journal's newest committed chain
        link (gateway/chain.py), an anchor outside the machine for ``saltgw verify --anchor``."""
        return f"{self.prefix}/{self.enterprise}/{self.site}/gateway/{self.gateway}/chain"
