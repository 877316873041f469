"""Sparkplug B (spBv1.0) telemetry output: README.md beside this file.

Importing this package needs no protobuf; :class:`SparkplugOutput` raises
:class:`SparkplugUnavailable` (saying ``pip install 'saltgw[sparkplug]'``) when it is missing.
"""

from gateway.telemetry.sparkplug.commands import CommandMapSink, CommandRefused, CommandSink
from gateway.telemetry.sparkplug.config import SparkplugConfig
from gateway.telemetry.sparkplug.output import SparkplugOutput, SparkplugStats, SparkplugUnavailable

__all__ = [
    "CommandMapSink",
    "CommandRefused",
    "CommandSink",
    "SparkplugConfig",
    "SparkplugOutput",
    "SparkplugStats",
    "SparkplugUnavailable",
]
