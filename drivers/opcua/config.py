"""Configuration of one OPC UA server (a PLC): endpoint, security, identity, how values are
collected (subscription or polling) and the tags with their nodes. See ``README.md``."""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.base import DeviceConfigBase, NodeRef
from drivers.opcua.addressing import parse_browse_path, parse_node

__all__ = [
    "TYPE_HINTS",
    "Deadband",
    "Identity",
    "NoSecurity",
    "OpcUaDeviceConfig",
    "OpcUaTag",
    "SecureChannel",
    "Security",
]

# The NodeId string forms (OPC UA Part 6, 5.3.1.10), checked when asyncua, which parses them
# fully, is not installed: the core install still validates an OPC UA tag map.
_NODE_SYNTAX = re.compile(
    r"^(?:(?:ns=\d+|nsu=[^;]+);)?(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
    r"|b=[A-Za-z0-9+/]+={0,2})$",
    re.DOTALL,
)

TagName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

#: OPC UA built-in types a tag's ``type`` may name (the node's DataType is checked on connect).
TYPE_HINTS = (
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
    "DateTime",
    "LocalizedText",
)
TypeHint = Literal[
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
    "DateTime",
    "LocalizedText",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class NoSecurity(_Strict):
    """No signing, no encryption: only on a segregated control network."""

    policy: Literal["None"] = Field(description="Security policy None (messages in clear).")


class SecureChannel(_Strict):
    """A signed (and usually encrypted) secure channel with certificates on both sides."""

    policy: Literal["Basic256Sha256", "Aes128_Sha256_RsaOaep"] = Field(
        description="Security policy of the secure channel."
    )
    mode: Literal["Sign", "SignAndEncrypt"] = Field(
        default="SignAndEncrypt",
        description="Message security mode: Sign (integrity) or SignAndEncrypt (also private).",
    )
    certificate: Path = Field(
        description="The gateway's application instance certificate (DER or PEM); its "
        "SubjectAltName URI is our application URI unless `application_uri` is set."
    )
    private_key: Path = Field(description="Private key of `certificate` (PEM or DER).")
    private_key_password_env: EnvName | None = Field(
        default=None,
        description="Environment variable holding the private key's password, if it has one.",
    )
    private_key_password_file: Path | None = Field(
        default=None,
        description="File holding the private key's password (mode 0600); used when the "
        "variable is unset.",
    )
    trusted_server_certificates: list[Path] = Field(
        default_factory=list,
        description="Server certificates (DER or PEM) we trust: the server must present one of "
        "these exactly (pinning).",
    )
    trust_dir: Path | None = Field(
        default=None,
        description="Directory whose *.der / *.pem / *.crt files are trusted server certificates "
        "(read again on every connect, so a certificate can be trusted without a restart).",
    )

    @model_validator(mode="after")
    def _needs_trust(self) -> SecureChannel:
        if not self.trusted_server_certificates and self.trust_dir is None:
            raise ValueError(
                "a secure channel needs trusted_server_certificates or trust_dir: the server's "
                "certificate is only accepted when we trust it"
            )
        return self


Security = Annotated[NoSecurity | SecureChannel, Field(discriminator="policy")]


class Identity(_Strict):
    """User name and password for ActivateSession (the password from the environment or an
    owner-only file, never from this file)."""

    username: str = Field(min_length=1, description="User name on the OPC UA server.")
    password_env: EnvName | None = Field(
        default=None,
        description="Environment variable that holds the password (never put it in this file).",
    )
    password_file: Path | None = Field(
        default=None,
        description="File holding the password, readable by its owner only (mode 0600); used "
        "when the variable is unset.",
    )

    @model_validator(mode="after")
    def _has_password(self) -> Identity:
        if self.password_env is None and self.password_file is None:
            raise ValueError("give password_env or password_file")
        return self


class Deadband(_Strict):
    """Report a numeric value only when it moved by more than this (subscribe mode)."""

    type: Literal["absolute", "percent"] = Field(
        description="absolute: in the value's unit; percent: of the node's EURange (the server "
        "must expose EURange)."
    )
    value: float = Field(ge=0, description="Size of the deadband.")

    @model_validator(mode="after")
    def _percent_range(self) -> Deadband:
        if self.type == "percent" and self.value > 100:
            raise ValueError(f"a percent deadband is at most 100, not {self.value}")
        return self


class OpcUaTag(_Strict):
    """One variable node of the server, by NodeId or by browse path."""

    node: str | None = Field(
        default=None,
        description="NodeId: 'ns=2;s=Line1.BagCount', 'nsu=urn:…;s=…', or 's=…'/'i=…' in the "
        "device's namespace_uri. Exactly one of node and browse_path.",
        examples=["nsu=urn:plc:line1;s=Line1.BagCount"],
    )
    browse_path: str | None = Field(
        default=None,
        description="Browse names from the Root folder, e.g. '0:Objects/2:Line1/2:BagCount'; a "
        "name without 'index:' is in the device's namespace_uri.",
        examples=["0:Objects/Line1/BagCount"],
    )
    type: TypeHint | None = Field(
        default=None,
        description="Expected OPC UA data type; checked against the node on connect (a mismatch "
        "is a tag error). Unset: whatever the node holds.",
    )
    writable: bool = Field(
        default=False,
        description="The gateway may write this tag (MES commands); writes to other tags are "
        "refused before they reach the PLC.",
    )
    sampling_interval_ms: float | None = Field(
        default=None, ge=0, description="Per-tag sampling interval; default: the device's."
    )
    deadband: Deadband | None = Field(
        default=None, description="Per-tag deadband (numeric nodes); default: the device's."
    )

    @field_validator("node")
    @classmethod
    def _node(cls, v: str | None) -> str | None:
        if v is not None and _asyncua_installed():
            parse_node(v)
        elif v is not None and not _NODE_SYNTAX.match(v.strip()):
            raise ValueError(
                f"not a NodeId: {v.strip()!r} (expected e.g. 'ns=2;s=Line1.BagCount', "
                "'nsu=urn:plc;s=Line1.BagCount', 's=Line1.BagCount' or 'i=1001')"
            )
        return v

    @field_validator("browse_path")
    @classmethod
    def _browse_path(cls, v: str | None) -> str | None:
        if v is not None:
            parse_browse_path(v)
        return v

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of node and browse_path")
        return self


class OpcUaDeviceConfig(DeviceConfigBase):
    """A PLC (or any OPC UA server) read through subscriptions or polling."""

    driver: Literal["opcua"] = Field(description="Selects the OPC UA driver.")
    endpoint: str = Field(
        pattern=r"^opc\.tcp://[^\s/:]+(:\d{1,5})?(/\S*)?$",
        description="Endpoint URL of the server, opc.tcp://host:port[/path].",
        examples=["opc.tcp://192.168.10.5:4840"],
    )
    security: Security = Field(
        default_factory=lambda: NoSecurity(policy="None"),
        description="{policy: None} or {policy: Basic256Sha256 | Aes128_Sha256_RsaOaep, mode, "
        "certificate, private_key, trusted_server_certificates / trust_dir}.",
    )
    identity: Identity | None = Field(
        default=None, description="User name and password; none = anonymous."
    )
    allow_cleartext_secrets: bool = Field(
        default=False,
        description="Allow an identity (user name and password) over security policy None to a "
        "host that is not loopback: the password crosses the network in clear. Only for an "
        "isolated network; a warning at every start. Without it `saltgw validate` and the "
        "start refuse such a config.",
    )
    application_uri: str | None = Field(
        default=None,
        description="Our application URI; default: the URI in the client certificate "
        "(secure channel), else urn:saltgw:{device id}.",
    )
    namespace_uri: str | None = Field(
        default=None,
        description="Namespace of the PLC's nodes: NodeIds and browse names without a namespace "
        "are in it, resolved to its current index on every connect.",
        examples=["urn:plc:line1"],
    )
    mode: Literal["subscribe", "poll"] = Field(
        default="subscribe",
        description="subscribe: the server reports changes (a Reading holds what changed); poll: "
        "read every tag each poll_interval_ms.",
    )
    report: Literal["changes", "all"] = Field(
        default="changes",
        description="subscribe mode: a Reading holds the tags that changed (changes) or every "
        "tag's last known value (all, for profiles that expect a full image).",
    )
    publishing_interval_ms: float = Field(
        default=250, ge=10, description="Subscription publishing interval (ms)."
    )
    sampling_interval_ms: float = Field(
        default=100, ge=0, description="Default sampling interval of a tag (ms; 0 = fastest)."
    )
    queue_size: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="Values the server queues per tag between two publishes (oldest dropped).",
    )
    deadband: Deadband | None = Field(
        default=None, description="Default deadband of numeric tags; none = every change."
    )
    keepalive_count: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Publishing intervals without data after which the server sends a keep-alive.",
    )
    stall_timeout_ms: float | None = Field(
        default=None,
        gt=0,
        description="No data and no keep-alive for this long: the subscription is stalled and "
        "the link is reset. Default: 3 keep-alive periods, at least 2 s.",
    )
    poll_interval_ms: float = Field(
        default=500, gt=0, description="poll mode: time between the starts of two reads (ms)."
    )
    timeout_ms: float = Field(
        default=3000, gt=0, description="How long to wait for the answer to one request (ms)."
    )
    connect_timeout_ms: float = Field(
        default=5000, gt=0, description="How long connecting (channel, session, nodes) may take."
    )
    watchdog_interval_ms: float = Field(
        default=1000,
        ge=100,
        description="How often the link is probed (reading the server state) to notice a dead "
        "connection that did not close.",
    )
    tags: dict[TagName, OpcUaTag] = Field(
        min_length=1, description="Tags to read, by name (letters, digits, _; not leading digit)."
    )

    @property
    def stall_timeout_secs(self) -> float:
        """Silence (no data, no keep-alive) after which the subscription counts as stalled."""
        if self.stall_timeout_ms is not None:
            return self.stall_timeout_ms / 1000
        keepalive_period = self.publishing_interval_ms * self.keepalive_count / 1000
        return max(3 * keepalive_period, 2.0)

    def tag_names(self) -> set[str]:
        """Names of the tags this device yields."""
        return set(self.tags)

    calls_methods: ClassVar[bool] = True

    @classmethod
    def method_address_error(cls, ref: NodeRef) -> str | None:
        """An object or method node is addressed as a tag is: a NodeId or a browse path."""
        try:
            OpcUaTag(node=ref.node, browse_path=ref.browse_path)
        except ValidationError as exc:
            return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        return None

    def writable_tags(self) -> set[str]:
        """Names of the tags the gateway may write."""
        return {name for name, tag in self.tags.items() if tag.writable}


@cache
def _asyncua_installed() -> bool:
    try:
        return importlib.util.find_spec("asyncua") is not None
    except (ImportError, ValueError):
        return False
