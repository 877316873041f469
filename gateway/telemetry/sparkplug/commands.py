"""DCMD writes: the :class:`CommandSink` seam and the sink that applies saltgw's MES command
allow-list (gateway/commands.py, gateway/command_auth.py).

The output checks what it can itself (the device and metric exist, the value's type fits the
tag, ``dcmd_writes`` is on) and hands each write to the sink; the sink decides whether the tag
may be written and carries it out. Every refusal is logged with the reason; nothing a peer
sends can stop the output's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from typing import Protocol

from drivers.base import TagValue
from gateway.command_auth import CommandAuthSection
from gateway.commands import CommandMap

__all__ = ["CommandMapSink", "CommandRefused", "CommandSink"]

log = logging.getLogger(__name__)


class CommandRefused(Exception):
    """A write the sink will not carry out; the message says why (it is logged)."""


class CommandSink(Protocol):
    """Where DCMD writes go. Called on the Sparkplug thread: must not block.

    Returns a :class:`concurrent.futures.Future` that completes when the device acknowledged
    the write (``None``) or fails with the reason; raises :class:`CommandRefused` at once for
    a write that is not allowed. ``asyncio.run_coroutine_threadsafe`` returns such a future."""

    def write(self, device: str, tag: str, value: TagValue) -> Future[None]: ...


class CommandMapSink:
    """Writes allowed by the MES command allow-list: only tags of the device's command map
    (``CommandMap.tags()``: the tags some configured command writes), and only when the
    gateway's ``commands:`` section is mode ``open`` — a DCMD names no issuer and carries no
    signature, so under ``allow_list`` (or with no ``commands:`` section, closed) every DCMD
    is refused. Allowed writes run as ``write(device, tag, value)`` on ``loop`` (given here or
    later with :meth:`bind`, once the gateway's loop runs)."""

    def __init__(
        self,
        command_maps: Mapping[str, CommandMap],
        auth: CommandAuthSection | None,
        write: Callable[[str, str, TagValue], Awaitable[None]],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._tags = {dev: cmap.tags() for dev, cmap in command_maps.items()}
        self._auth = auth
        self._write = write
        self._loop = loop

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def set_command_maps(self, command_maps: Mapping[str, CommandMap]) -> None:
        """The allow-list of a reloaded map (gateway/reload.py); one assignment, so a DCMD
        being checked on another thread sees the old list or the new one, whole."""
        self._tags = {dev: cmap.tags() for dev, cmap in command_maps.items()}

    def write(self, device: str, tag: str, value: TagValue) -> Future[None]:
        if self._loop is None:
            raise CommandRefused("the gateway is not running yet")
        if self._auth is None:
            raise CommandRefused("commands are closed (no commands: section)")
        if self._auth.mode != "open":
            raise CommandRefused(
                "commands: mode is allow_list and a DCMD names no issuer and carries no "
                "signature (only mode open accepts Sparkplug writes)"
            )
        allowed = self._tags.get(device)
        if not allowed:
            raise CommandRefused(f"device {device!r} has no command map (profile commands:)")
        if tag not in allowed:
            raise CommandRefused(
                f"tag {tag!r} of {device!r} is not written by any of its commands "
                f"(writable: {', '.join(sorted(allowed))})"
            )
        return asyncio.run_coroutine_threadsafe(_run(self._write(device, tag, value)), self._loop)


async def _run(aw: Awaitable[None]) -> None:
    await aw
