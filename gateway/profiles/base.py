"""The profile seam: a device profile turns one device's readings into events.

A YAML map picks a profile for a device and binds the profile's *roles* (the values it needs,
e.g. a checkweigher's ``weight``) to the device's tag names; each role has a default tag name, so
a tag map that uses the profile's names needs no binding at all::

    profiles:
      - profile: checkweigher
        device: cw1
        nominal_g: 400
        tags: {weight: net_weight}     # only where the device's tag is named differently
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from drivers.base import Reading
from gateway.events import EventDraft

__all__ = ["Profile", "ProfileConfigBase", "ProfileSpec", "Role"]


class ProfileConfigBase(BaseModel):
    """Fields every profile entry has; a profile's model narrows ``profile`` to a Literal."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    profile: str = Field(description="Which device profile.")
    device: str = Field(description="Id of the device (in `devices:`) this profile reads.")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Role → device tag name, where the device's tag is not named as the "
        "profile's default (see the profile's roles).",
    )


@dataclass(frozen=True, slots=True)
class Role:
    """A value a profile needs: ``default`` is the tag name used unless bound otherwise."""

    name: str
    default: str
    required: bool = True
    description: str = ""


class Profile(Protocol):
    device: str

    def on_reading(self, reading: Reading) -> list[EventDraft]:
        """Events for one reading of the profile's device."""
        ...

    def on_tick(self, now: datetime) -> list[EventDraft]:
        """Called about once a second: events that time alone causes (a missed check)."""
        ...


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    config_model: type[ProfileConfigBase]
    create: Callable[[Any, Mapping[str, str], tzinfo], Profile]
    roles: tuple[Role, ...]
    description: str = ""
    #: Roles an entry needs beyond those marked ``required``, from its raw settings (e.g. a
    #: ``source:`` setting that picks which values the profile reads); None: no such roles.
    required_for: Callable[[Mapping[str, Any]], Collection[str]] | None = None
    #: Every reading must hold all the profile's tags (a CCP record is one image of the
    #: device): an OPC UA device in subscribe mode then needs ``report: all``.
    full_image: bool = False

    def bind(
        self,
        overrides: Mapping[str, str],
        device_tags: set[str] | None,
        entry: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Role → tag name: overrides, else the default when the device has it (or must).

        ``entry`` (the profile's raw settings) lets :attr:`required_for` make more roles
        required, so that a missing tag is reported against the config, not at run time."""
        must: set[str] = set()
        if self.required_for is not None and entry is not None:
            must = set(self.required_for(entry))
        out: dict[str, str] = {}
        for role in self.roles:
            tag = overrides.get(role.name, role.default)
            needed = role.required or role.name in must
            if role.name in overrides or needed or device_tags is None or tag in device_tags:
                out[role.name] = tag
        return out
