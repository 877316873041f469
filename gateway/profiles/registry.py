"""The device profiles saltgw ships, by name."""

from __future__ import annotations

from gateway.profiles.base import ProfileSpec
from gateway.profiles.checkweigher import CHECKWEIGHER

__all__ = ["profile_specs"]

_BUILT_IN: tuple[ProfileSpec, ...] = (CHECKWEIGHER,)


def profile_specs() -> dict[str, ProfileSpec]:
    return {spec.name: spec for spec in _BUILT_IN}
