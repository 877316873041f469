"""The ``bridge:`` section of a config file (pydantic; every field described: the JSON Schema and
docs/config-reference.md are generated from these models)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
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


class BridgeSection(_Strict):
    """Store-and-forward to the national platform (docs/bridge.md)."""

    store: Path = Field(
        default=Path("var/bridge.db"),
        description="SQLite trace store and outbox (relative: to the working directory).",
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
            "a key is generated once into {store}.chain-key beside the store."
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
