"""The ``bridge:`` section of a config file (pydantic; every field described: the JSON Schema and
docs/config-reference.md are generated from these models)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from drivers.secrets import secret
from gateway.bridge.db import PostgresUrl

__all__ = [
    "AmqpSourceSection",
    "BridgeSection",
    "DirectoryUploadSection",
    "EnterpriseInfoSection",
    "HttpUploadSection",
    "KnownGatewaySection",
    "ProductInfoSection",
    "PublicSnapshotSection",
    "ReconcileSection",
    "RetentionSection",
    "UploadRetrySection",
    "epcis_xsd_path",
]

NODE_RE = r"^[A-Za-z0-9_]{1,32}$"
# a PostgreSQL trace store (gateway/bridge/db.py); anything else is a SQLite file's path
EPCIS_XSD_ENV = "SALTGW_EPCIS_XSD"
EPCIS_XSD_REL = Path("../shared/reference/epcis-2.0/xsd/EPCglobal-epcis-2_0.xsd")


def epcis_xsd_path(configured: Path | None = None) -> Path:
    """GS1's EPCIS 2.0 XSD: the configured path, else ``$SALTGW_EPCIS_XSD``, else next to the
    source tree (a development checkout; an installed package has none there). GS1's schema is
    not shipped with saltgw."""
    if configured is not None:
        return configured
    env = os.environ.get(EPCIS_XSD_ENV)
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / EPCIS_XSD_REL).resolve()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ProductInfoSection(_Strict):
    """A product's category-level (品类) public fields, QB/T 5279-2018 table 6 (and table 3)."""

    id: str = Field(
        description="Product as batch.start events name it in data.product (id or name).",
        pattern=r"^\S(.{0,62}\S)?$",
    )
    name: str = Field(description="产品名称 (table 6 #1), as printed on the bag.", min_length=1)
    net_content: str = Field(description="净含量 (table 6 #2), e.g. 400g.", min_length=1)
    spec: str | None = Field(default=None, description="规格 (table 2/4), e.g. 400g×40.")
    standard: str | None = Field(default=None, description="产品标准编号 (#3), e.g. GB/T 5461.")
    category: str | None = Field(
        default=None, description="产品的类别 (#4): 加碘食盐 or 未加碘食盐."
    )
    process: str | None = Field(default=None, description="生产工艺 (#5).")
    shelf_life_days: int = Field(
        default=1095, ge=1, description="保质期 (#7) in days; drives retention (11.1)."
    )
    origin: str | None = Field(default=None, description="产地 (#12).")
    raw_salt_source: str | None = Field(default=None, description="原料盐生产商及产地 (#13).")
    usage: str | None = Field(default=None, description="食用方法 (#18).")
    tips: str | None = Field(default=None, description="温馨提示 (#19).")
    ingredients: str | None = Field(default=None, description="配料表及其含量 (#20).")
    storage: str | None = Field(default=None, description="贮存条件 (#21).")
    nutrition: str | None = Field(default=None, description="营养成分表 (#22).")
    special_groups: str | None = Field(default=None, description="特殊人群适应性 (#24).")


class EnterpriseInfoSection(_Strict):
    """The producer's public fields, QB/T 5279-2018 table 6 #8-11, #14-15, #27."""

    name: str = Field(description="生产企业 (#8).", min_length=1)
    address: str | None = Field(default=None, description="生产企业地址 (#9).")
    phone: str | None = Field(default=None, description="电话 (#10): area code + number.")
    website: str | None = Field(default=None, description="企业网址 (#11).")
    licence_no: str | None = Field(default=None, description="定点生产企业许可证编号 (#14).")
    licence_valid: str | None = Field(default=None, description="许可证有效期 (#15).")
    credit_rating: str | None = Field(default=None, description="企业信用等级 (#27).")


class KnownGatewaySection(_Strict):
    """A gateway whose events this bridge stores: its id and the key it signs them with
    (docs/bridge.md, "Which gateways"; the key as in docs/security.md, "Secrets")."""

    id: str = Field(
        description="The gateway's id (gateway.id of its config; the events' `gateway`).",
        pattern=r"^[A-Za-z0-9_\-]{1,64}$",
    )
    key_env: str | None = Field(
        default=None,
        description="Environment variable holding the gateway's event signing key.",
    )
    key_file: Path | None = Field(
        default=None,
        description="File holding the gateway's event signing key, owner-only (mode 0600): "
        "a copy of that gateway's key file (gateway.event_key_file, or {journal}-event.key "
        "beside its journal); used when key_env is unset or empty.",
    )

    @model_validator(mode="after")
    def _has_key(self) -> KnownGatewaySection:
        if self.key_env is None and self.key_file is None:
            raise ValueError(f"gateway {self.id!r}: give key_env or key_file (its signing key)")
        return self


class UploadRetrySection(_Strict):
    max_attempts: int = Field(
        default=10,
        ge=1,
        description=(
            "Failed deliveries (error replies, garbage, time-outs) after which a document is "
            "quarantined. An unreachable platform (connection refused) does not count: the "
            "document waits, retried with backoff, however long the outage."
        ),
    )
    backoff_min_secs: float = Field(default=1.0, gt=0, description="First retry delay.")
    backoff_max_secs: float = Field(default=300.0, gt=0, description="Longest retry delay.")


class HttpUploadSection(_Strict):
    """POST each document to the platform (reply format: docs/platform-xml.md)."""

    type: Literal["http"] = Field(description="Upload by HTTP(S) POST.")
    url: str = Field(description="Endpoint, http:// or https://.", pattern=r"^https?://[^\s]+$")
    token_env: str | None = Field(
        default=None,
        description="Environment variable holding a bearer token (never put it in this file).",
    )
    token_file: Path | None = Field(
        default=None,
        description="File holding the bearer token, readable by its owner only (mode 0600); "
        "used when token_env is unset or empty.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the platform (system CAs when unset)."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    key_file: Path | None = Field(default=None, description="Client private key (PEM).")
    allow_cleartext_secrets: bool = Field(
        default=False,
        description="Allow a token (token_env / token_file) over http:// to a host that is not "
        "loopback: the bearer token crosses the network in clear. Only for an isolated "
        "network; a warning at every start. Without it `saltgw validate` and the start refuse "
        "such a config.",
    )
    timeout_secs: float = Field(
        default=30.0, gt=0, description="Connect and reply time-out of one attempt."
    )
    retry: UploadRetrySection = Field(
        default_factory=UploadRetrySection, description="Retries and quarantine."
    )


class DirectoryUploadSection(_Strict):
    """Write each document into a directory (atomically) for plants that upload by other means."""

    type: Literal["directory"] = Field(description="Upload by writing files into a directory.")
    path: Path = Field(description="The outbox directory (created when missing).")
    ack: Literal["receipt_file", "on_write"] = Field(
        default="receipt_file",
        description=(
            "'receipt_file': a document counts as acknowledged when {number}.receipt.json "
            "(the platform reply, docs/platform-xml.md) appears next to it; 'on_write': "
            "writing the file is the acknowledgement (the other means takes responsibility)."
        ),
    )
    retry: UploadRetrySection = Field(
        default_factory=UploadRetrySection, description="Retries (a full disk) and quarantine."
    )


class ReconcileSection(_Strict):
    interval_secs: float = Field(
        default=30.0, gt=0, description="How often batches are reconciled."
    )
    incomplete_alarm_secs: float = Field(
        default=3600.0,
        gt=0,
        description=(
            "A batch idle this long (no new event) whose records are not all acknowledged "
            "raises alarm.upload (once; a second alarm.upload says when it completes)."
        ),
    )


class RetentionSection(_Strict):
    after_shelf_life_days: int = Field(
        default=365,
        ge=365,
        description="Records are kept at least shelf life + this (QB/T 5279 11.1: 1 year).",
    )
    min_days: int = Field(
        default=730, ge=730, description="Records are kept at least this long (2 years)."
    )
    default_shelf_life_days: int = Field(
        default=1095,
        ge=1,
        description="Shelf life assumed for records whose product is unknown.",
    )
    purge_interval_secs: float = Field(
        default=86400.0,
        gt=0,
        description="How often the bridge purges expired records (also: saltgw trace --purge).",
    )


class PublicSnapshotSection(_Strict):
    """The public snapshot the resolver reads (QB/T 5279-2018 9, 11.4; docs/bridge.md,
    "Public snapshot"): table 6 fields and code states only, one SQLite file replaced
    atomically."""

    path: Path = Field(
        description="The published snapshot (gateway/public_snapshot.py), replaced atomically; "
        "the resolver opens it (or a copy of it on another host) read-only.",
    )
    interval_secs: float = Field(
        default=30.0,
        gt=0,
        description="Publish at most this often, and only when something changed since the "
        "last publish (the working copy is brought up to date every second).",
    )
    work_path: Path | None = Field(
        default=None,
        description="The bridge's working copy, updated incrementally from the trace store; "
        "default {path}.work beside the snapshot. Never give it to the resolver.",
    )

    def work_file(self) -> Path:
        return self.work_path or self.path.with_name(self.path.name + ".work")


AMQP_PORTS = {"amqp": 5672, "amqps": 5671}
LINE_RE = r"^[A-Za-z0-9_\-]{1,64}/[A-Za-z0-9_\-]{1,64}$"


def amqp_address(url: str) -> tuple[str, int]:
    """(host, port) of an ``amqp://``/``amqps://`` URL; the port defaults to 5672 / 5671."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or AMQP_PORTS.get(parts.scheme, 5672)


def _amqp_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in AMQP_PORTS or not parts.hostname:
        raise ValueError(f"expected amqp://host:port or amqps://host:port; got {v!r}")
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query:
        raise ValueError(
            f"{v!r}: give only scheme, host and port (the user in username, the password in "
            "password_env / password_file, the virtual host in vhost)"
        )
    try:
        parts.port  # noqa: B018 - validates the port number
    except ValueError as exc:
        raise ValueError(f"bad port in {v!r}") from exc
    return v


AmqpUrl = Annotated[str, AfterValidator(_amqp_url)]


class AmqpSourceSection(_Strict):
    """Consume the lines' events from RabbitMQ queues over AMQP 0-9-1 (``bridge.source:
    amqp``): one durable quorum queue per line with a single active consumer, bound to the
    exchange the MQTT plugin publishes to, so several bridges share the lines and each line is
    stored in order by one bridge at a time (docs/scaling.md, "Bridges sharing the load")."""

    urls: list[AmqpUrl] = Field(
        min_length=1,
        max_length=16,
        description="The cluster's nodes, in order of preference: amqp://host:port or "
        "amqps://host:port (TLS); the next takes over when the one in use fails, with "
        "exponential backoff once all failed (mqtt.reconnect_min_secs / reconnect_max_secs). "
        "All amqp:// or all amqps://; each host:port once.",
        examples=[["amqps://rabbit-1:5671", "amqps://rabbit-2:5671", "amqps://rabbit-3:5671"]],
    )
    lines: list[Annotated[str, Field(pattern=LINE_RE)]] = Field(
        min_length=1,
        description="The lines whose events these bridges store, each as {site}/{line} of this "
        "config's enterprise (the gateways' gateway.site and gateway.line); one queue each.",
        examples=[["daiyue/L1", "daiyue/L2"]],
    )
    bridges: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,32}$")]] = Field(
        default_factory=list,
        description="The node ids (bridge.node_id) of every bridge sharing these lines, this "
        "one included, the same list in each bridge's config: a line is preferred by the "
        "bridge with the highest hash of '{bridge}/{site}/{line}' (rendezvous hashing), which "
        "registers on it first; the others join as standby. Empty: this bridge alone.",
    )
    standby_delay_secs: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How long after connecting a bridge waits before it joins the lines it "
        "does not prefer as a standby consumer (the preferred bridge registers first and "
        "becomes the active one).",
    )
    queue_prefix: str = Field(
        default="saltgw.bridge",
        pattern=r"^[A-Za-z0-9_.\-]{1,100}$",
        description="Queue names are {queue_prefix}.{enterprise}.{site}.{line}.",
    )
    exchange: str = Field(
        default="amq.topic",
        min_length=1,
        max_length=255,
        description="The topic exchange the MQTT plugin publishes to (rabbitmq_mqtt's "
        "mqtt.exchange).",
    )
    vhost: str = Field(default="/", min_length=1, description="The virtual host.")
    prefetch: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Unacknowledged messages per line at most (AMQP basic.qos per consumer); "
        "a message is acknowledged once committed to the trace store.",
    )
    heartbeat_secs: int = Field(
        default=10,
        ge=0,
        le=600,
        description="AMQP heartbeat: a node silent for about twice this long is left (failover). "
        "0 turns heartbeats off.",
    )
    username: str | None = Field(
        default=None, description="User name (none: RabbitMQ's guest, from loopback only)."
    )
    password_env: str | None = Field(
        default="SALTGW_AMQP_PASSWORD",
        description="Environment variable holding the password (never put it in this file).",
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the password, readable by its owner only (mode 0600 or "
        "0400); used when the variable is unset.",
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the nodes (amqps://; system CAs when unset)."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    key_file: Path | None = Field(default=None, description="Client private key (PEM).")
    allow_cleartext_secrets: bool = Field(
        default=False,
        description="Allow a username (and its password) over amqp:// (no TLS) to a host that "
        "is not loopback: the password crosses the network in clear. Only for an isolated "
        "network; a warning at every start. Without it `saltgw validate` and the start refuse "
        "such a config.",
    )

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        seen: dict[tuple[str, int], int] = {}
        for i, u in enumerate(v):
            addr = amqp_address(u)
            if addr in seen:
                raise ValueError(
                    f"endpoint {i + 1} ({u!r}) is the same node as endpoint {seen[addr] + 1} "
                    f"({v[seen[addr]]!r}); list each host:port once"
                )
            seen[addr] = i
        tls = [urlsplit(u).scheme == "amqps" for u in v]
        if any(tls) and not all(tls):
            plain = ", ".join(repr(u) for u, t in zip(v, tls, strict=True) if not t)
            raise ValueError(
                f"mixes TLS (amqps://) and plain (amqp://) endpoints: {plain} without TLS; "
                "every endpoint must use the same scheme"
            )
        return v

    @field_validator("lines", "bridges")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({i for i in v if v.count(i) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        return v

    def password(self) -> str | None:
        """The password from the environment or the password file, else None."""
        return secret(self.password_env, self.password_file, "AMQP password")


class BridgeSection(_Strict):
    """Store-and-forward to the national platform (docs/bridge.md)."""

    store: PostgresUrl | Path = Field(
        default=Path("var/bridge.db"),
        description=(
            "Trace store and outbox: a SQLite file (relative: to the working directory), or a "
            "postgresql://user@host:port/db URL of one enterprise store that several bridges "
            "write (docs/scaling.md; the postgres extra; its schema: saltgw store migrate; the "
            "password from PGPASSWORD or ~/.pgpass rather than in the URL)."
        ),
    )
    chain_key_env: str | None = Field(
        default="SALTGW_STORE_CHAIN_KEY",
        description=(
            "Environment variable holding the key of the trace store's hash chains "
            "(HMAC-SHA-256, docs/security.md); wins over chain_key_file when set and not empty."
        ),
    )
    chain_key_file: Path | None = Field(
        default=None,
        description=(
            "Owner-only file (0600) holding the chain key; with neither this nor the variable, "
            "a key is generated once into {store}.chain-key beside a SQLite store (a "
            "PostgreSQL store needs one of them, the same on every bridge)."
        ),
    )
    node_id: str | None = Field(
        default=None,
        description=(
            "Names this bridge in document numbers {enterprise}-{yyyymmdd}-{node}-{seq}; "
            "defaults to the gateway id with '-' removed. Distinct per bridge."
        ),
        pattern=NODE_RE,
    )
    client_id: str | None = Field(
        default=None,
        description="MQTT client id of the persistent session; defaults to saltgw-bridge-{node}.",
    )
    session_expiry_secs: int = Field(
        default=7 * 86400,
        ge=60,
        description="MQTT 5 session expiry: how long the broker queues events while it is away.",
    )
    seq_gap_grace_secs: float = Field(
        default=5.0,
        gt=0,
        description=(
            "A gateway seq missing while later ones arrived is alarmed (alarm.seq_gap) and "
            "asked for again (replay) when not filled within this time (out-of-order "
            "redelivery after a reconnect is normal)."
        ),
    )
    share_group: str | None = Field(
        default=None,
        description=(
            "Subscribe as $share/{group}/… so several bridges split the load (batch events are "
            "subscribed unshared: every bridge knows every batch)."
        ),
        pattern=r"^[A-Za-z0-9_\-]{1,64}$",
    )
    source: Literal["mqtt", "amqp"] = Field(
        default="mqtt",
        description="Where events come from: 'mqtt' (subscribe on the gateway's broker, "
        "mqtt:) or 'amqp' (consume per-line RabbitMQ queues, amqp:, so several bridges share "
        "the lines; docs/scaling.md).",
    )
    amqp: AmqpSourceSection | None = Field(
        default=None, description="The RabbitMQ queues to consume, with source 'amqp'."
    )
    gateways: list[KnownGatewaySection] = Field(
        default_factory=list,
        description=(
            "Gateways whose events this bridge stores, each with its signing key; the gateway "
            "of this config is known without being listed. An event from any other gateway, "
            "unsigned or with a signature that does not match is quarantined (reason "
            "'unauthenticated'), never stored."
        ),
    )
    topics: list[str] = Field(
        default_factory=list,
        description=("Topic filters to consume; default: this line's …/event/# and …/alarm/#."),
    )
    profile: Literal["epcis", "platform"] = Field(
        default="platform",
        description=(
            "Document format uploaded: 'epcis' (EPCIS 2.0 XML) or 'platform' (the generic "
            "platform XML of docs/platform-xml.md, QB/T 5279 11.3)."
        ),
    )
    codes_per_document: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Codes per upload document at most."
    )
    max_delay_secs: float = Field(
        default=10.0,
        ge=0,
        description="A document is built when this old a record waits, even if not full.",
    )
    gzip_base64: bool = Field(
        default=False, description="Upload documents gzip-compressed and base64-encoded."
    )
    epcis_xsd: Path | None = Field(
        default=None,
        description=(
            "GS1 EPCIS 2.0 XSD (EPCglobal-epcis-2_0.xsd with the files it imports beside it) "
            "to check EPCIS documents against before upload; default: $SALTGW_EPCIS_XSD, else "
            "../shared/reference/epcis-2.0/xsd/EPCglobal-epcis-2_0.xsd next to the source "
            "tree. With profile 'epcis' a bridge whose schema is missing does not start. "
            "Platform documents are always checked against the shipped XSD."
        ),
    )
    epcis_check: Literal["required", "off"] = Field(
        default="required",
        description=(
            "'required': every EPCIS document is checked against epcis_xsd before it enters "
            "the outbox (a missing schema is a config error). 'off': upload EPCIS documents "
            "unchecked, each marked unchecked in the outbox (documents.checked = 0) and "
            "counted on /metrics (saltgw_bridge_documents_unchecked)."
        ),
    )
    upload: (
        Annotated[HttpUploadSection | DirectoryUploadSection, Field(discriminator="type")] | None
    ) = Field(
        default=None,
        description="Where documents go; none: they are built and kept in the outbox only.",
    )
    reconcile: ReconcileSection = Field(
        default_factory=ReconcileSection, description="Per-batch reconciliation and alarm."
    )
    retention: RetentionSection = Field(
        default_factory=RetentionSection, description="Record retention (QB/T 5279 11.1)."
    )
    enterprise_info: EnterpriseInfoSection | None = Field(
        default=None, description="Producer fields of table 6, sent in platform documents."
    )
    products: list[ProductInfoSection] = Field(
        default_factory=list, description="Products (table 6 category fields) by id."
    )
    public: PublicSnapshotSection | None = Field(
        default=None,
        description="Publish the public snapshot the resolver reads (table 6, code states); "
        "none: no snapshot.",
    )

    @model_validator(mode="after")
    def _epcis_schema(self) -> BridgeSection:
        if self.profile == "epcis" and self.epcis_check == "required":
            path = epcis_xsd_path(self.epcis_xsd)
            if not path.is_file():
                raise ValueError(
                    f"profile 'epcis' checks every document against GS1's EPCIS 2.0 XSD, and "
                    f"none is at {path}: set bridge.epcis_xsd (or ${EPCIS_XSD_ENV}) to "
                    f"EPCglobal-epcis-2_0.xsd from GS1's EPCIS 2.0 package, or set "
                    f"bridge.epcis_check: off to upload documents unchecked"
                )
        return self

    @model_validator(mode="after")
    def _source(self) -> BridgeSection:
        if self.source == "amqp":
            if self.amqp is None:
                raise ValueError("source 'amqp' needs an amqp: section (urls, lines)")
            if self.share_group is not None:
                raise ValueError(
                    "share_group is for source 'mqtt' (MQTT 5 shared subscriptions); with "
                    "source 'amqp' the bridges share lines through amqp.bridges"
                )
            if self.topics:
                raise ValueError("topics is for source 'mqtt'; with 'amqp' give amqp.lines")
        elif self.amqp is not None:
            raise ValueError("amqp: is set but source is 'mqtt': set source: amqp to use it")
        return self

    @model_validator(mode="after")
    def _unique_gateways(self) -> BridgeSection:
        ids = [g.id for g in self.gateways]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"gateways: id listed twice: {', '.join(dup)}")
        return self

    @model_validator(mode="after")
    def _unique_products(self) -> BridgeSection:
        ids = [p.id for p in self.products]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"products: id listed twice: {', '.join(dup)}")
        return self

    def product(self, pid: str | None) -> ProductInfoSection | None:
        return next((p for p in self.products if p.id == pid), None)
