"""The console's settings (docs/console.md), pydantic, every field described (the JSON Schema
and docs/config-reference.md are generated from them):

- :class:`ConsoleSection`: a file holding only ``console:`` (``saltgw console CONSOLE.yaml``),
  which names the line, the trace store and the broker itself;
- :class:`GatewayConsoleSection`: ``console:`` inside a gateway config, so that one file serves
  ``saltgw run``, the bridge and the console: the line, time zone and topic prefix are the
  gateway's, the store the bridge's and the broker the ``mqtt:`` section's (URL, TLS, user name
  and password as the gateway uses them) unless the section names its own.
  :meth:`GatewayConsoleSection.resolve` turns it into the :class:`ConsoleSection` the console
  runs with.

Core-importable (pydantic only): ``gateway.config.models`` imports this module, so the gateway
config's names are imported where they are used."""

from __future__ import annotations

import re
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from gateway.bridge.db import PostgresUrl
from gateway.web.listen import parse_listen

if TYPE_CHECKING:
    from gateway.config.models import ConfigBase, MqttSection

__all__ = ["ConsoleFile", "ConsoleSection", "GatewayConsoleSection", "check_broker_url"]

ID_RE = r"^[A-Za-z0-9_\-]{1,64}$"
SCHEMES = ("mqtt", "mqtts", "tcp", "ssl")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


def check_broker_url(url: str) -> str:
    """``url`` when it is ``mqtt[s]://HOST[:PORT]`` (as ``mqtt.url``); ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; got {url!r}")
    try:
        parts.port  # noqa: B018 - validates the port number
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    return url


class _ConsoleOptions(_Strict):
    """What a console file and a gateway config's ``console:`` have in common."""

    listen: str = Field(
        default="127.0.0.1:8490",
        description="HOST:PORT the console listens on (port 0: any free port).",
    )
    users: Path = Field(
        default=Path("var/console-users.json"),
        description="The users file (saltgw console-user manages it; scrypt-hashed passwords).",
    )
    session_secs: float = Field(
        default=8 * 3600.0, gt=0, le=7 * 86400, description="A sign-in lasts this long."
    )
    secure_cookies: bool = Field(
        default=False,
        description="Mark the session cookie Secure (set it when a TLS reverse proxy serves "
        "the console).",
    )
    threads: int = Field(default=12, ge=4, le=256, description="Worker threads of waitress.")
    max_streams: int = Field(
        default=6,
        ge=1,
        le=200,
        description="Live (SSE) streams at once; each holds a worker thread, so keep it below "
        "threads. More are answered 503 and the browser retries.",
    )
    history_points: int = Field(
        default=20_000,
        ge=100,
        le=1_000_000,
        description="KPI samples kept for the charts (one per kpi message of the gateway).",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v


class ConsoleSection(_ConsoleOptions):
    """The internal web console (docs/console.md): its own process, on 127.0.0.1 by default;
    behind a reverse proxy (TLS) for use from other hosts."""

    store: PostgresUrl | Path = Field(
        default=Path("var/bridge.db"),
        description="The bridge's trace store: read for trace, recall and completeness; the "
        "console writes only access-log rows and resend requests into it. A SQLite file or a "
        "postgresql:// URL (an enterprise store, docs/scaling.md; its chain key must be given).",
    )
    chain_key_env: str | None = Field(
        default="SALTGW_STORE_CHAIN_KEY",
        description="Environment variable holding the trace store's chain key (as the "
        "bridge's bridge.chain_key_env).",
    )
    chain_key_file: Path | None = Field(
        default=None,
        description="File holding the chain key (as bridge.chain_key_file); default: "
        "{store}.chain-key beside the store.",
    )
    broker: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="The broker the gateway publishes to (mqtt://HOST[:PORT], or mqtts:// for "
        "TLS with the system's CAs). A broker that needs a password or a client certificate: "
        "put the console: section in the gateway's config, which uses its mqtt: section.",
    )
    topic_prefix: str = Field(default="salt/v1", description="The gateway's mqtt.topic_prefix.")
    enterprise: str = Field(pattern=r"^[0-9]{4}$", description="The 4-digit enterprise code.")
    site: str = Field(pattern=ID_RE, description="The site id of the line.")
    line: str = Field(pattern=ID_RE, description="The line id.")
    timezone: str = Field(default="Asia/Shanghai", description="Time zone of the pages.")
    _mqtt: Any = PrivateAttr(default=None)  # the gateway's MqttSection, from resolve()

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str) -> str:
        return check_broker_url(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from gateway.config.models import parse_timezone

        parse_timezone(v)
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or re.search(r"[+#\x00]", v) or v.startswith("/") or v.endswith("/"):
            raise ValueError(f"not a topic prefix: {v!r}")
        return v

    def tz(self) -> tzinfo:
        from gateway.config.models import parse_timezone

        return parse_timezone(self.timezone)

    def mqtt(self) -> MqttSection:
        """The broker connection: the gateway config's ``mqtt:`` section (credentials, TLS)
        when this section came from one without a ``broker`` of its own, else ``broker``
        with neither."""
        from gateway.config.models import MqttSection

        if self._mqtt is not None:
            assert isinstance(self._mqtt, MqttSection)
            return self._mqtt
        return MqttSection(url=self.broker, protocol="3.1.1", password_env=None)

    @property
    def line_root(self) -> str:
        return f"{self.topic_prefix}/{self.enterprise}/{self.site}/{self.line}"

    @property
    def status_filter(self) -> str:
        return f"{self.topic_prefix}/{self.enterprise}/{self.site}/gateway/+/status"


class GatewayConsoleSection(_ConsoleOptions):
    """``console:`` in a gateway config (docs/console.md): ``saltgw console`` with this file
    serves the gateway's line from the bridge's trace store and the ``mqtt:`` section's broker.
    """

    store: PostgresUrl | Path | None = Field(
        default=None,
        description="The trace store to read (a SQLite file or a postgresql:// URL); default: "
        "bridge.store (with the bridge's chain key settings), else var/bridge.db.",
    )
    broker: str | None = Field(
        default=None,
        description="Another broker than mqtt.url (mqtt://HOST[:PORT] or mqtts://, no "
        "credentials); default: the mqtt: section's URL, TLS, user name and password.",
    )

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str | None) -> str | None:
        return None if v is None else check_broker_url(v)

    def resolve(self, cfg: ConfigBase) -> ConsoleSection:
        """The console's settings for the gateway config ``cfg`` this section is part of."""
        g = cfg.gateway
        own: dict[str, Any] = self.model_dump(exclude={"store", "broker"})
        chain: dict[str, Any] = {}
        store = self.store
        bridge = cfg.bridge
        if bridge is not None and (store is None or store == bridge.store):
            store = bridge.store
            chain = {
                "chain_key_env": bridge.chain_key_env,
                "chain_key_file": bridge.chain_key_file,
            }
        fields: dict[str, Any] = {
            **own,
            **chain,
            **({"store": store} if store is not None else {}),
            "broker": self.broker or cfg.mqtt.url,
            "topic_prefix": cfg.mqtt.topic_prefix,
            "enterprise": g.enterprise,
            "site": g.site,
            "line": g.line,
            "timezone": g.timezone,
        }
        out = ConsoleSection.model_validate(fields)
        if self.broker is None:
            out._mqtt = cfg.mqtt
        return out


class ConsoleFile(_Strict):
    """A file holding only ``console:``."""

    console: ConsoleSection = Field(description="The web console (docs/console.md).")
