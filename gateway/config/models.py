"""The config / tag-map format, as pydantic models (every field described: they generate the
JSON Schema printed by ``saltgw schema`` and the reference docs).

Device entries are validated by the model of their driver (``driver:`` is the discriminator);
drivers are found through entry points, so :func:`config_model` builds the top-level model from
whatever drivers are installed.
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from drivers.base import DeviceConfigBase
from drivers.registry import driver_specs
from drivers.secrets import secret
from firmware_sim.base import SimulatorConfigBase
from firmware_sim.registry import simulator_specs
from gateway.bridge.config import BridgeSection
from gateway.command_auth import CommandAuthSection
from gateway.console.config import GatewayConsoleSection
from gateway.enterprise import EnterpriseKind, enterprise_error
from gateway.failover import broker_address, is_tls_url
from gateway.profiles.base import ProfileConfigBase
from gateway.profiles.registry import profile_specs
from gateway.resolver.config import ResolverSection
from gateway.telemetry.config import TelemetrySection
from gateway.telemetry.sparkplug.config import SparkplugConfig

__all__ = [
    "Config",
    "GatewaySection",
    "JournalSection",
    "MqttSection",
    "TlsSection",
    "config_model",
]

ID_RE = r"^[A-Za-z0-9_\-]{1,64}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewaySection(Strict):
    id: str = Field(
        description="Gateway id: names the gateway in every event and in its status topic.",
        pattern=ID_RE,
        examples=["gw-daiyue-1"],
    )
    kind: EnterpriseKind = Field(
        default="producer",
        description="What the enterprise is (docs/wholesale.md): 'producer' (a salt producer "
        "with its QB/T 5279-2018 Annex A code, which heads every code it prints, 6.2) or "
        "'wholesaler' (批发企业, QB/T 5279 5.2: scans the producers' codes in and out; named by "
        "its unified social credit code, as Annex A lists producers only).",
    )
    enterprise: str = Field(
        description=(
            "The enterprise's id, in topics, events and uploads. A producer: its 4-digit "
            "enterprise code (QB/T 5279-2018 Annex A: 8 or 9 + last 3 digits of the producer's "
            "certificate number). A wholesaler: its 18-character unified social credit code "
            "(统一社会信用代码, GB 32100-2015, check character verified)."
        ),
        examples=["8035", "91370900MA3C5DEM0H"],
    )
    site: str = Field(description="Site (plant) id, used in topics.", pattern=ID_RE)
    line: str = Field(description="Packing line id, used in topics.", pattern=ID_RE)
    timezone: str = Field(
        default="Asia/Shanghai",
        description="Time zone of event timestamps: an IANA name or a fixed offset like +08:00.",
    )
    event_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the key this gateway signs its events with "
        "(HMAC-SHA-256, docs/events.md#signature); an error at start when named and unset, "
        "unless event_key_file is set.",
    )
    event_key_file: Path | None = Field(
        default=None,
        description="File holding the event signing key, owner-only (mode 0600). With neither "
        "this nor event_key_env, {journal}-event.key beside the journal is used, generated "
        "at the first start (a bridge in the same process knows it).",
    )

    @field_validator("enterprise")
    @classmethod
    def _enterprise(cls, v: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind", "producer")  # absent when `kind` itself was invalid
        why = enterprise_error(kind, v)
        if why is not None:
            raise ValueError(why)
        return v

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        parse_timezone(v)
        return v

    def tz(self) -> tzinfo:
        return parse_timezone(self.timezone)


def parse_timezone(v: str) -> tzinfo:
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", v)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r} (use e.g. Asia/Shanghai or +08:00)") from exc


class TlsSection(Strict):
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker (system CAs when unset)."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    key_file: Path | None = Field(default=None, description="Client private key (PEM).")
    verify_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names its host."
    )


def _broker_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"expected mqtt://host:port or mqtts://host:port; got {v!r}")
    try:
        parts.port  # noqa: B018 - validates the port number
    except ValueError as exc:
        raise ValueError(f"bad port in {v!r}") from exc
    return v


BrokerUrl = Annotated[str, AfterValidator(_broker_url)]


class MqttSection(Strict):
    url: BrokerUrl = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://host:port or mqtts://host:port (TLS). For several "
        "brokers (failover), use `urls` instead.",
    )
    urls: list[BrokerUrl] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="Broker endpoints for failover, in order of preference (instead of `url`): "
        "the first is tried first; when the one in use fails (refused, connection lost, "
        "keep-alive or PUBACK timeout) the next takes over, with exponential backoff once all "
        "failed (docs/scaling.md). All mqtt:// or all mqtts://; each host:port once.",
        examples=[["mqtts://broker-1:8883", "mqtts://broker-2:8883"]],
    )
    protocol: Literal["3.1.1", "5"] = Field(default="5", description="MQTT protocol version.")
    client_id: str | None = Field(
        default=None, description="MQTT client id; defaults to saltgw-{gateway id}."
    )
    username: str | None = Field(default=None, description="User name for the broker.")
    password_env: str | None = Field(
        default="SALTGW_MQTT_PASSWORD",
        description="Environment variable holding the password (never put it in this file).",
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the password, readable by its owner only (mode 0600 or "
        "0400; anything looser is refused); used when the variable is unset.",
    )
    tls: TlsSection | None = Field(
        default=None, description="TLS settings; implied with default values by mqtts://."
    )
    allow_cleartext_secrets: bool = Field(
        default=False,
        description="Allow a username (and its password) over mqtt:// (no TLS) to a host that "
        "is not loopback: the password crosses the network in clear. Only for an isolated "
        "network; a warning at every start. Without it `saltgw validate` and the start refuse "
        "such a config.",
    )
    topic_prefix: str = Field(
        default="salt/v1", description="First levels of every topic.", pattern=r"^[^#+]+$"
    )
    keepalive_secs: int = Field(default=30, ge=5, le=3600, description="MQTT keep-alive.")
    ack_timeout_secs: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="A broker that owes PUBACKs this long without sending one is reported hung "
        "(log, /healthz) long before the keep-alive notices; the events stay in the journal.",
    )
    inflight: int = Field(
        default=1000,
        ge=1,
        le=20000,
        description="Events published and not yet acknowledged (PUBACK) at most.",
    )
    reconnect_min_secs: float = Field(
        default=0.5, gt=0, description="First delay before reconnecting to the broker."
    )
    reconnect_max_secs: float = Field(
        default=10.0, gt=0, description="Longest delay between reconnect attempts."
    )

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        seen: dict[tuple[str, int], int] = {}
        for i, u in enumerate(v):
            addr = broker_address(urlsplit(u))
            if addr in seen:
                raise ValueError(
                    f"endpoint {i + 1} ({u!r}) is the same broker as endpoint {seen[addr] + 1} "
                    f"({v[seen[addr]]!r}); list each host:port once"
                )
            seen[addr] = i
        tls = [is_tls_url(u) for u in v]
        if any(tls) and not all(tls):
            plain = ", ".join(repr(u) for u, t in zip(v, tls, strict=True) if not t)
            raise ValueError(
                f"mixes TLS (mqtts://) and plain (mqtt://) endpoints: {plain} without TLS; "
                "every endpoint must use the same scheme"
            )
        return v

    @model_validator(mode="after")
    def _url_or_urls(self) -> MqttSection:
        if self.urls is not None and "url" in self.model_fields_set:
            raise ValueError(
                "set either url (one broker) or urls (a failover list of brokers), not both"
            )
        return self

    @property
    def endpoints(self) -> list[str]:
        """The broker URLs in order of preference: ``urls``, else ``[url]``."""
        return list(self.urls) if self.urls else [self.url]

    def password(self) -> str | None:
        """The broker password from the environment or the password file, else None."""
        return secret(self.password_env, self.password_file, "MQTT password")


class JournalSection(Strict):
    path: Path = Field(
        default=Path("var/journal.db"),
        description="SQLite journal file (a relative path is relative to the working directory).",
    )
    max_events: int = Field(
        default=1_000_000, ge=100, description="Most undelivered events kept on disk."
    )
    when_full: Literal["block", "drop_oldest"] = Field(
        default="block",
        description=(
            "When max_events undelivered events are on disk: 'block' makes producers wait "
            "(counted); 'drop_oldest' deletes the oldest undelivered events (counted, logged)."
        ),
    )
    keep_delivered_secs: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "Delivered events (acknowledged by the broker) are kept this long, so that a "
            "subscriber that finds a seq gap can have them replayed (docs/architecture.md, "
            "Replay); 0 deletes them at once."
        ),
    )
    keep_delivered_events: int = Field(
        default=100_000,
        ge=0,
        description="At most this many delivered events are kept (the newest); 0: none.",
    )
    chain_key_env: str | None = Field(
        default="SALTGW_JOURNAL_CHAIN_KEY",
        description=(
            "Environment variable holding the key of the journal's hash chain (HMAC-SHA-256, "
            "docs/security.md); wins over chain_key_file when set and not empty."
        ),
    )
    chain_key_file: Path | None = Field(
        default=None,
        description=(
            "Owner-only file (0600) holding the chain key; with neither this nor the variable, "
            "a key is generated once into {path}.chain-key beside the journal."
        ),
    )


class ConfigBase(Strict):
    gateway: GatewaySection = Field(description="Who this gateway is and which line it serves.")
    mqtt: MqttSection = Field(
        default_factory=MqttSection, description="Broker connection and topic tree."
    )
    journal: JournalSection = Field(
        default_factory=JournalSection, description="Durable event journal."
    )
    bridge: BridgeSection | None = Field(
        default=None,
        description="Bridge to the national traceability platform, run by `saltgw run`.",
    )
    commands: CommandAuthSection | None = Field(
        default=None,
        description="Who may send which MQTT command to which device (docs/commands.md); "
        "without it every command is refused ({mode: open} runs every well-formed command, "
        "for laboratories only).",
    )
    telemetry: TelemetrySection | None = Field(
        default=None,
        description="Tag telemetry: the store that keeps the reported tag values until every "
        "output delivered them, its bounds and policy, and the UNS topics (docs/events.md); "
        "absent: no telemetry. Which tags of a device: its own `telemetry:`.",
    )
    sparkplug: SparkplugConfig | None = Field(
        default=None,
        description="Sparkplug B (spBv1.0) output of the tag telemetry "
        "(gateway/telemetry/sparkplug/README.md); needs `telemetry:` and the `sparkplug` extra.",
    )
    resolver: ResolverSection | None = Field(
        default=None,
        description="The public query service `saltgw resolver` runs (docs/resolver.md); a file "
        "may also hold only this section.",
    )
    console: GatewayConsoleSection | None = Field(
        default=None,
        description="The internal web console `saltgw console` runs with this file "
        "(docs/console.md): the gateway's line, the bridge's trace store, the mqtt: section's "
        "broker; a console file may also hold only this section (with the line named in it).",
    )
    # Overridden in config_model() with the discriminated unions of installed plugins.
    devices: list[Any] = Field(default_factory=list)
    profiles: list[Any] = Field(default_factory=list)
    simulators: list[Any] = Field(default_factory=list)


@cache
def config_model() -> type[ConfigBase]:
    """The top-level model for the installed drivers and simulators."""
    dev_models = [s.config_model for s in driver_specs().values()] or [DeviceConfigBase]
    sim_models = [s.config_model for s in simulator_specs().values()] or [SimulatorConfigBase]
    prof_models = [s.config_model for s in profile_specs().values()] or [ProfileConfigBase]
    dev_t: Any = _discriminated(dev_models, "driver")
    prof_t: Any = _discriminated(prof_models, "profile")
    sim_t: Any = _discriminated(sim_models, "kind")
    return create_model(
        "Config",
        __base__=ConfigBase,
        devices=(
            list[dev_t],
            Field(default_factory=list, description="Devices this gateway reads (tag maps)."),
        ),
        profiles=(
            list[prof_t],
            Field(
                default_factory=list,
                description="Device profiles: what each device's readings mean (events).",
            ),
        ),
        simulators=(
            list[sim_t],
            Field(
                default_factory=list,
                description="Simulated devices that `saltgw sim` starts for tests and demos.",
            ),
        ),
    )


def _discriminated(models: list[type[Any]], key: str) -> Any:
    from typing import Union

    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator=key)]  # noqa: UP007


@cache
def device_adapter() -> TypeAdapter[Any]:
    """Validates one ``devices:`` entry against the installed drivers' models."""
    field = config_model().model_fields["devices"]
    (item_type,) = get_args(field.annotation)
    return TypeAdapter(item_type)


Config = ConfigBase
