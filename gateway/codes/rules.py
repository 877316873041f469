"""How traceability codes are checked on a line: the ``codes:`` block of the scanner profiles.

QB/T 5279-2018 clause 6.2: a traceability code is the 4-digit enterprise code (Annex A) followed
by the enterprise's in-house product code, a random code of at most 20 characters. Clause 8.2:
the printed mark (the QR code) carries the resolver server's address and the code, so a scanner
usually reads a URL such as ``https://trace.example.cn/q/8035K7Q2M9X4TZ`` (the path ``saltgw
resolver`` answers).
"""

from __future__ import annotations

import string

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MAX_RANDOM_LEN", "TraceCodeRules"]

MAX_RANDOM_LEN = 20  # QB/T 5279-2018 6.2: 企业内部产品代码应为长度不超过20位的随机码

_PRINTABLE = set(string.printable) - set(string.whitespace)


class TraceCodeRules(BaseModel):
    """What makes a scanned traceability code valid (QB/T 5279-2018 6.2, 8.2, Annex A)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    enterprise: str | None = Field(
        default=None,
        description="Enterprise code the codes must carry; none = the gateway's enterprise "
        "(gateway.enterprise).",
        pattern=r"^[89][0-9]{3}$",
        examples=["8035"],
    )
    own_enterprise_only: bool = Field(
        default=True,
        description="Refuse codes of other enterprises (true on a packing line); false accepts "
        "any enterprise of Annex A (a wholesaler's inbound scanning, QB/T 5279 5.2).",
    )
    require_annex_a: bool = Field(
        default=True,
        description="Refuse enterprise codes that are not in QB/T 5279-2018 Annex A table A.1.",
    )
    charset: str = Field(
        default="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        min_length=2,
        description="Characters the in-house random code may use (the code printer's setting).",
    )
    min_random_len: int = Field(
        default=6,
        ge=1,
        le=MAX_RANDOM_LEN,
        description="Shortest in-house random code accepted (shorter ones are misreads).",
    )
    max_random_len: int = Field(
        default=MAX_RANDOM_LEN,
        ge=1,
        le=MAX_RANDOM_LEN,
        description="Longest in-house random code accepted; at most 20 (QB/T 5279 6.2).",
    )
    resolver_hosts: list[str] = Field(
        default_factory=list,
        description="Host names of the resolver server allowed in QR URLs (QB/T 5279 8.2); "
        "empty = any host.",
        examples=[["trace.example.cn"]],
    )
    query_keys: list[str] = Field(
        default_factory=lambda: ["c", "code", "id", "tc"],
        min_length=1,
        description="Query parameters that may hold the code in a resolver URL; without one, "
        "the URL's last path segment is the code.",
    )

    @field_validator("charset")
    @classmethod
    def _charset(cls, v: str) -> str:
        bad = sorted({c for c in v if c not in _PRINTABLE})
        if bad:
            raise ValueError(f"charset holds characters that are not printable ASCII: {bad!r}")
        if len(set(v)) != len(v):
            raise ValueError("charset lists a character twice")
        return v

    @field_validator("resolver_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        return [h.lower() for h in v]

    @model_validator(mode="after")
    def _lengths(self) -> TraceCodeRules:
        if self.min_random_len > self.max_random_len:
            raise ValueError(
                f"min_random_len ({self.min_random_len}) is greater than max_random_len "
                f"({self.max_random_len}): no code could be valid"
            )
        return self

    def enterprise_or(self, default: str) -> str:
        """The enterprise codes must carry: the configured one, else ``default``."""
        return self.enterprise or default
