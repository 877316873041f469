"""The config / tag-map format, as pydantic models (every field described: they generate the
JSON Schema printed by ``saltgw schema`` and the reference docs).

Device entries are validated by the model of their driver (``driver:`` is the discriminator);
drivers are found through entry points, so :func:`config_model` builds the top-level model from
whatever drivers are installed.

:func:`config_model_for` builds it from what one file names instead: the drivers, profiles and
simulators of its entries and the optional sections (``bridge``, ``sparkplug``, ``resolver``) it
has; the others' modules are never imported (docs/performance.md, "Gateway memory"). It accepts
exactly the files the full model accepts that name those, with the same values; a file it
refuses is validated again with :func:`config_model`, whose errors are the ones reported
(gateway/config/loader.py), so that every message stays the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta, timezone, tzinfo
from functools import cache, lru_cache
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
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
from drivers.registry import driver_spec, driver_specs
from drivers.secrets import secret
from gateway.command_auth import CommandAuthSection
from gateway.enterprise import EnterpriseKind, enterprise_error
from gateway.failover import broker_address, is_tls_url
from gateway.profiles.base import ProfileConfigBase
from gateway.profiles.registry import profile_names, profile_spec, profile_specs
from gateway.telemetry.config import TelemetrySection

if TYPE_CHECKING:
    from gateway.bridge.config import BridgeSection
    from gateway.console.config import GatewayConsoleSection
    from gateway.resolver.config import ResolverSection
    from gateway.telemetry.sparkplug.config import SparkplugConfig

__all__ = [
    "Config",
    "GatewaySection",
    "JournalSection",
    "MqttSection",
    "TlsSection",
    "config_model",
    "config_model_for",
]

ID_RE = r"^[A-Za-z0-9_\-]{1,64}$"


class Strict(BaseModel):
    # defer_build (every config model of saltgw has it): a model builds its own validator and
    # serializer when first used on its own; a section validated as a part of the map is covered
    # by the top-level model's validator and builds none (docs/performance.md, fourth pass)
    model_config = ConfigDict(extra="forbid", defer_build=True)


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


#: Optional sections whose models are imported only for a file that has them (and for the full
#: model): name -> (module, model, description)
OPTIONAL_SECTIONS: dict[str, tuple[str, str, str]] = {
    "bridge": (
        "gateway.bridge.config",
        "BridgeSection",
        "Bridge to the national traceability platform, run by `saltgw run`.",
    ),
    "sparkplug": (
        "gateway.telemetry.sparkplug.config",
        "SparkplugConfig",
        "Sparkplug B (spBv1.0) output of the tag telemetry "
        "(gateway/telemetry/sparkplug/README.md); needs `telemetry:` and the `sparkplug` extra.",
    ),
    "resolver": (
        "gateway.resolver.config",
        "ResolverSection",
        "The public query service `saltgw resolver` runs (docs/resolver.md); a file "
        "may also hold only this section.",
    ),
    "console": (
        "gateway.console.config",
        "GatewayConsoleSection",
        "The internal web console `saltgw console` runs with this file (docs/console.md): the "
        "gateway's line, the bridge's trace store, the mqtt: section's broker; a console file "
        "may also hold only this section (with the line named in it).",
    ),
}


def _optional_section(name: str) -> Any:
    return Field(default=None, description=OPTIONAL_SECTIONS[name][2])


class ConfigBase(Strict):
    gateway: GatewaySection = Field(description="Who this gateway is and which line it serves.")
    mqtt: MqttSection = Field(
        default_factory=MqttSection, description="Broker connection and topic tree."
    )
    journal: JournalSection = Field(
        default_factory=JournalSection, description="Durable event journal."
    )
    bridge: BridgeSection | None = _optional_section("bridge")
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
    sparkplug: SparkplugConfig | None = _optional_section("sparkplug")
    resolver: ResolverSection | None = _optional_section("resolver")
    console: GatewayConsoleSection | None = _optional_section("console")
    # Overridden in _build() with the discriminated unions of the drivers, profiles and
    # simulators (installed ones, or those a file names); the optional sections above too, their
    # models imported there (this class is never used to validate).
    devices: list[Any] = Field(default_factory=list)
    profiles: list[Any] = Field(default_factory=list)
    simulators: list[Any] = Field(default_factory=list)


LIST_SECTIONS: dict[str, str] = {
    "devices": "Devices this gateway reads (tag maps).",
    "profiles": "Device profiles: what each device's readings mean (events).",
    "simulators": "Simulated devices that `saltgw sim` starts for tests and demos.",
}


@cache
def config_model() -> type[ConfigBase]:
    """The top-level model for the installed drivers and simulators (the JSON Schema, and the
    errors of a file that has any)."""
    from firmware_sim.base import SimulatorConfigBase
    from firmware_sim.registry import simulator_specs

    dev_models = [s.config_model for s in driver_specs().values()] or [DeviceConfigBase]
    sim_models = [s.config_model for s in simulator_specs().values()] or [SimulatorConfigBase]
    prof_models = [s.config_model for s in profile_specs().values()] or [ProfileConfigBase]
    return _build(
        {
            "devices": _discriminated(dev_models, "driver"),
            "profiles": _discriminated(prof_models, "profile"),
            "simulators": _discriminated(sim_models, "kind"),
        },
        tuple(OPTIONAL_SECTIONS),
    )


#: what one file names: (drivers, profiles, simulator kinds, optional sections), each sorted
Named = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def config_model_for(data: Any) -> type[ConfigBase]:
    """The top-level model built from what ``data`` (a parsed file) names: the models of its
    devices' drivers, its profiles and its simulators, and the optional sections it has. A
    section it lacks accepts only its default. :func:`config_model` when ``data`` is not a
    mapping of lists of entries each naming a known driver, profile or simulator: such a file
    has errors, which the full model words."""
    named = _named(data)
    return config_model() if named is None else _narrow_model(*named)


def _named(data: Any) -> Named | None:
    if not isinstance(data, dict):
        return None
    drivers = _names(data, "devices", "driver", lambda n: driver_spec(n) is not None)
    profiles = _names(data, "profiles", "profile", set(profile_names()).__contains__)
    simulators = _names(data, "simulators", "kind", _is_simulator_kind)
    if drivers is None or profiles is None or simulators is None:
        return None
    return drivers, profiles, simulators, tuple(n for n in OPTIONAL_SECTIONS if n in data)


def _is_simulator_kind(kind: str) -> bool:
    from firmware_sim.registry import simulator_kinds

    return kind in simulator_kinds()


def _names(
    data: dict[Any, Any], section: str, key: str, known: Callable[[str], bool]
) -> tuple[str, ...] | None:
    """The sorted names the entries of ``data[section]`` pick by ``key``; None unless every
    entry is a mapping naming a known one."""
    entries = data.get(section, [])
    if not isinstance(entries, list):
        return None
    names = set()
    for entry in entries:
        name = entry.get(key) if isinstance(entry, dict) else None
        if not isinstance(name, str) or not known(name):
            return None
        names.add(name)
    return tuple(sorted(names))


@lru_cache(maxsize=16)  # a reload validates the running line's map again: the same model
def _narrow_model(
    drivers: tuple[str, ...],
    profiles: tuple[str, ...],
    simulators: tuple[str, ...],
    sections: tuple[str, ...],
) -> type[ConfigBase]:
    def union(specs: list[Any], key: str) -> Any:
        return _discriminated([s.config_model for s in specs], key) if specs else None

    lists: dict[str, Any] = {
        "devices": union([driver_spec(n) for n in drivers], "driver"),
        "profiles": union([profile_spec(n) for n in profiles], "profile"),
        "simulators": None,
    }
    if simulators:
        from firmware_sim.registry import simulator_spec

        lists["simulators"] = union([simulator_spec(n) for n in simulators], "kind")
    return _build(lists, sections)


def _build(lists: dict[str, Any], sections: tuple[str, ...]) -> type[ConfigBase]:
    """``Config``: ``lists`` gives each list section's item type (None: it takes no entries);
    the optional sections not in ``sections`` accept only their default (None)."""
    fields: dict[str, Any] = {}
    for name, (module, model, description) in OPTIONAL_SECTIONS.items():
        kind: Any = getattr(import_module(module), model) | None if name in sections else None
        fields[name] = (kind, Field(default=None, description=description))
    for name, description in LIST_SECTIONS.items():
        item: Any = lists[name]  # None: list[None] takes only []
        fields[name] = (list[item], Field(default_factory=list, description=description))
    return create_model("Config", __base__=ConfigBase, **fields)


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
