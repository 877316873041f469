"""The ``console:`` file of ``saltgw console CONFIG.yaml`` (docs/console.md): where the console
listens, its users file, the bridge's trace store it reads, and the broker and line whose topics
it follows. pydantic, every field described (the JSON Schema is generated from it)."""

from __future__ import annotations

import re
from datetime import tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.config.models import parse_timezone
from gateway.resolver.config import parse_listen

__all__ = ["ConsoleFile", "ConsoleSection", "broker_address"]

ID_RE = r"^[A-Za-z0-9_\-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def broker_address(url: str) -> tuple[str, int]:
    """(host, port) of ``mqtt://HOST[:PORT]``; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"expected mqtt://HOST[:PORT]; got {url!r}")
    try:
        port = parts.port or 1883
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    return parts.hostname, port


class ConsoleSection(_Strict):
    """The internal web console (docs/console.md): its own process, on 127.0.0.1 by default;
    behind a reverse proxy (TLS) for use from other hosts."""

    listen: str = Field(
        default="127.0.0.1:8490",
        description="HOST:PORT the console listens on (port 0: any free port).",
    )
    users: Path = Field(
        default=Path("var/console-users.json"),
        description="The users file (saltgw console-user manages it; scrypt-hashed passwords).",
    )
    store: Path = Field(
        default=Path("var/bridge.db"),
        description="The bridge's trace store: read for trace, recall and completeness; the "
        "console writes only access-log rows and resend requests into it.",
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
        description="The broker the gateway publishes to (mqtt://HOST[:PORT]).",
    )
    topic_prefix: str = Field(default="salt/v1", description="The gateway's mqtt.topic_prefix.")
    enterprise: str = Field(pattern=r"^[0-9]{4}$", description="The 4-digit enterprise code.")
    site: str = Field(pattern=ID_RE, description="The site id of the line.")
    line: str = Field(pattern=ID_RE, description="The line id.")
    timezone: str = Field(default="Asia/Shanghai", description="Time zone of the pages.")
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

    @field_validator("broker")
    @classmethod
    def _broker(cls, v: str) -> str:
        broker_address(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        parse_timezone(v)
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or re.search(r"[+#\x00]", v) or v.startswith("/") or v.endswith("/"):
            raise ValueError(f"not a topic prefix: {v!r}")
        return v

    def tz(self) -> tzinfo:
        return parse_timezone(self.timezone)

    @property
    def line_root(self) -> str:
        return f"{self.topic_prefix}/{self.enterprise}/{self.site}/{self.line}"

    @property
    def status_filter(self) -> str:
        return f"{self.topic_prefix}/{self.enterprise}/{self.site}/gateway/+/status"


class ConsoleFile(_Strict):
    """A file holding only ``console:``."""

    console: ConsoleSection = Field(description="The web console (docs/console.md).")
