"""Config models of the rules that turn tag readings into events."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["LimitsConfig", "NetContentRuleConfig", "RuleConfig"]


class LimitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lo: float | None = Field(default=None, description="Lowest acceptable value (inclusive).")
    hi: float | None = Field(default=None, description="Highest acceptable value (inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> LimitsConfig:
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            raise ValueError(f"lo ({self.lo}) is above hi ({self.hi})")
        return self


class NetContentRuleConfig(BaseModel):
    """Each weighing of a checkweigher becomes a ``ccp.net_content`` event (QB/T 5279 7.2,
    table 2 row 4: net content is a critical control point)."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["net_content"] = Field(description="Rule kind.")
    device: str = Field(description="Id of the checkweigher device.")
    weight_tag: str = Field(default="weight_g", description="Tag with the last net weight.")
    counter_tag: str | None = Field(
        default="count",
        description=(
            "Tag counting weighings: an event per change. Without it, an event per change of "
            "the weight tag."
        ),
    )
    reject_tag: str | None = Field(
        default=None,
        description="Boolean tag: true when the device rejected the last bag (→ pack.reject).",
    )
    nominal_g: float = Field(gt=0, le=50_000, description="Nominal net content in grams.")
    limits: LimitsConfig | None = Field(
        default=None,
        description=(
            "Override of the limits in grams; by default lo = nominal − tolerable negative "
            "deviation (JJF 1070-2005 table 3), hi unset."
        ),
    )


# More rule kinds join this as a union discriminated by `rule`.
RuleConfig = NetContentRuleConfig
