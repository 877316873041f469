"""Rules turn device readings into events."""

from gateway.rules.base import Rule
from gateway.rules.models import RuleConfig
from gateway.rules.net_content import NetContentRule

__all__ = ["Rule", "RuleConfig", "build_rule"]


def build_rule(cfg: RuleConfig) -> Rule:
    return NetContentRule(cfg)
