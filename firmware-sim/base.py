"""The seam every simulator implements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Simulator", "SimulatorConfigBase", "SimulatorSpec"]


class SimulatorConfigBase(BaseModel):
    """Fields every entry of a config's ``simulators:`` list has; a simulator's config model
    extends it and narrows ``kind`` to a Literal of its own name."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Name of this simulated device (for logs).")
    kind: str = Field(description="Which simulator to run.")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(ge=0, le=65535, description="TCP port to listen on (0 picks a free one).")
    seed: int | None = Field(
        default=None, description="Random seed, for reproducible runs (tests); none = random."
    )

    def optional_needs(self) -> dict[str | None, tuple[str, ...]]:
        """Modules this entry needs beyond its spec's ``requires`` (e.g. a scan line's camera
        stations), by the extra that installs them (None: pip installs them by that name)."""
        return {}


@runtime_checkable
class Simulator(Protocol):
    """A running simulated device. ``port`` is the bound port once started."""

    @property
    def port(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class SimulatorSpec:
    """A simulator: its config model and how to create it.

    ``requires`` lists the top-level modules ``create`` imports (checked with
    ``importlib.util.find_spec``, never imported) and ``extra`` the saltgw extra that installs
    them; the spec's own module imports none of them (see ``line_plc_config.py``).
    """

    name: str
    config_model: type[SimulatorConfigBase]
    create: Callable[[Any], Simulator]
    description: str = ""
    extra: str | None = None
    requires: tuple[str, ...] = ()
