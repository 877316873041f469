"""The ``resolver:`` section of a config file (pydantic; every field described: the JSON Schema
and docs/config-reference.md are generated from these models).

``saltgw resolver CONFIG.yaml`` reads either a file holding only ``resolver:`` (the resolver on
its own host, 11.4) or a full gateway config with a ``resolver:`` section
(:class:`ResolverFile`, :func:`gateway.config.loader.read_resolver_config`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.codes.rules import TraceCodeRules
from gateway.web.listen import parse_listen

__all__ = [
    "Channel",
    "RateLimitSection",
    "ResolverFile",
    "ResolverSection",
    "SuspectCopySection",
    "parse_listen",
]

Channel = Literal["scan", "typed", "api"]
CHANNELS: tuple[Channel, ...] = ("scan", "typed", "api")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class RateLimitSection(_Strict):
    """Per-client token bucket (11.4 防攻击): a client may send ``burst`` requests at once, then
    ``per_second`` on average; more are answered 429 with Retry-After."""

    per_second: float = Field(
        default=5.0,
        gt=0,
        le=10_000,
        description="Requests a client may make per second on average (the bucket's refill).",
    )
    burst: int = Field(
        default=30,
        ge=1,
        le=100_000,
        description="Requests a client may make at once (the bucket's size).",
    )
    max_clients: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="Clients remembered at once; the least recently seen is forgotten first "
        "(bounded memory whatever a flood of addresses does).",
    )


class SuspectCopySection(_Strict):
    """When a genuine code's queries look like a copied label (QB/T 5279 8.8: 标识不能被转移、
    复制): more than ``max_queries`` queries, or queries from more than ``max_places`` distinct
    places (client networks: IPv4 /24, IPv6 /48), within ``window_days``. docs/resolver.md
    explains the defaults."""

    window_days: float = Field(
        default=30.0,
        gt=0,
        le=3650,
        description="How far back queries of the code are counted, in days.",
    )
    max_queries: int = Field(
        default=30,
        ge=1,
        description="More queries of one code than this within the window: suspect copy.",
    )
    max_places: int = Field(
        default=6,
        ge=1,
        description="Queries from more distinct places (networks) than this within the window: "
        "suspect copy.",
    )
    channels: list[Channel] = Field(
        default_factory=lambda: list(CHANNELS),
        min_length=1,
        description="Which query channels count (scan, typed, api); every query is recorded "
        "whichever channels count.",
    )


class ResolverSection(_Strict):
    """The public query service (``saltgw resolver``, docs/resolver.md; QB/T 5279 9, 10.4,
    11.4): it answers the URL a bag's QR code carries and a typed code from the published public
    snapshot only."""

    listen: str = Field(
        default="127.0.0.1:8480",
        description="HOST:PORT to listen on (0.0.0.0:8480 for every interface; port 0 picks a "
        "free one). Overridden by --listen.",
    )
    snapshot: Path = Field(
        description="The public snapshot file the bridge publishes (gateway/public_snapshot.py); "
        "read-only, reopened when it is replaced.",
    )
    query_log: Path = Field(
        default=Path("var/resolver-queries.db"),
        description="The resolver's own SQLite store of query records, feedback and complaints "
        "(table 5); must not be the snapshot. Replicas on one host may share it.",
    )
    reload_secs: float = Field(
        default=10.0,
        ge=0.1,
        le=3600,
        description="How often to look for a newer snapshot file (inode, size, mtime); the old "
        "one keeps answering until the new one opened fine.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Resolver processes sharing the listening socket (one per core: one "
        "process uses about one core); each has its own threads, snapshot connections and "
        "rate-limit table, and they share query_log (counts seen across them within 0.2 s).",
    )
    server: Literal["auto", "uvicorn", "waitress"] = Field(
        default="auto",
        description="The HTTP server: uvicorn (httptools, uvloop; the app answers on its event "
        "loop) or waitress (threads); auto: uvicorn when it is installed (the resolver extra), "
        "else waitress. docs/resolver.md compares them.",
    )
    threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Threads answering requests in each worker process (waitress only: uvicorn "
        "answers on its event loop); each has its own SQLite connections.",
    )
    connection_limit: int = Field(
        default=500,
        ge=1,
        description="Open client connections at most (per worker process); with waitress more "
        "wait in the listen backlog, with uvicorn one more closes the connection that has "
        "waited longest for a request.",
    )
    channel_timeout_secs: int = Field(
        default=30,
        ge=1,
        description="A connection idle this long is closed (slow clients); with uvicorn, also "
        "the time a request's head (line and headers) must arrive in, from the connection's "
        "start or the previous answer, and a request's body in.",
    )
    max_body_bytes: int = Field(
        default=16_384,
        ge=1024,
        le=1_048_576,
        description="Largest request body (a complaint); larger is answered 413.",
    )
    rate_limit: RateLimitSection = Field(
        default_factory=RateLimitSection, description="Per-client request rate limit."
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR) of reverse proxies whose X-Forwarded-For is believed; from "
        "any other peer the peer's own address is the client.",
        examples=[["127.0.0.1/32", "10.0.0.0/8"]],
    )
    suspect_copy: SuspectCopySection = Field(
        default_factory=SuspectCopySection, description="The suspect-copy rule (8.8)."
    )
    codes: TraceCodeRules = Field(
        default_factory=lambda: TraceCodeRules(own_enterprise_only=False),
        description="The code form checked before any lookup (QB/T 5279 6.2, Annex A); "
        "enterprises are those of the snapshot unless own_enterprise_only and enterprise say "
        "otherwise.",
    )
    hotline: str = Field(
        default="12315",
        pattern=r"^[0-9\-+ ]{3,20}$",
        description="The complaint hotline the pages advise beside the producer's phone "
        "(12315: the market regulator's).",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone of times shown on pages and in exports, and of --since.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network (CIDR such as 10.0.0.0/8): {net!r}") from None
        return v

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        parse_listen(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _apart(self) -> ResolverSection:
        if self.query_log.resolve() == self.snapshot.resolve():
            raise ValueError("query_log must not be the snapshot (the snapshot is read-only)")
        return self

    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ResolverFile(_Strict):
    """A config file holding only the resolver (the resolver on its own host, 11.4)."""

    resolver: ResolverSection = Field(description="The public query service.")
