"""Sparkplug B (spBv1.0) telemetry output: README.md beside this file.

Importing this package needs no protobuf; :class:`SparkplugOutput` raises
:class:`SparkplugUnavailable` (saying ``pip install 'saltgw[sparkplug]'``) when it is missing.
The names are loaded on first use: the config model (``gateway.config.models``) imports
:mod:`.config` without the output, which itself needs the config models.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.telemetry.sparkplug.commands import CommandMapSink, CommandRefused, CommandSink
    from gateway.telemetry.sparkplug.config import SparkplugConfig
    from gateway.telemetry.sparkplug.output import (
        SparkplugOutput,
        SparkplugStats,
        SparkplugUnavailable,
    )

__all__ = [
    "CommandMapSink",
    "CommandRefused",
    "CommandSink",
    "SparkplugConfig",
    "SparkplugOutput",
    "SparkplugStats",
    "SparkplugUnavailable",
]

_HOME = {
    "CommandMapSink": "commands",
    "CommandRefused": "commands",
    "CommandSink": "commands",
    "SparkplugConfig": "config",
    "SparkplugOutput": "output",
    "SparkplugStats": "output",
    "SparkplugUnavailable": "output",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
