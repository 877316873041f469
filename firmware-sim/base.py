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


@runtime_checkable
class Simulator(Protocol):
    """A running simulated device. ``port`` is the bound port once started."""

    @property
    def port(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class SimulatorSpec:
    name: str
    config_model: type[SimulatorConfigBase]
    create: Callable[[Any], Simulator]
    description: str = ""
