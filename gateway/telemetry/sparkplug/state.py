"""What an edge node keeps across restarts (a JSON file): the last bdSeq it used and the alias
of every metric.

- ``bd_seq``: Sparkplug 3.0 (6.4.18, 7.1.x) makes every MQTT CONNECT carry an NDEATH will with
  a bdSeq one higher than the previous CONNECT's (0-255, wrapping), and the NBIRTH of that
  session repeats it. It is written (and fsync'ed) *before* the CONNECT goes out, so after a
  kill -9 the next process never reuses the number a host may still hold a will for.
- ``aliases``: device -> tag -> alias, unique over the node. A tag keeps its alias for good;
  a new tag gets the next free number. Hosts that cache aliases see the same ones after a
  restart.

A file that cannot be read is logged and replaced (bdSeq starts over at 0, aliases anew): the
births that follow define every alias again, so hosts stay consistent.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["NodeState"]

log = logging.getLogger(__name__)


class NodeState:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.bd_seq: int | None = None  # the last one used (None: never connected)
        self.aliases: dict[str, dict[str, int]] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("Sparkplug state %s cannot be read (%s): starting anew", self.path, exc)
            return
        try:
            data: Any = json.loads(raw)
            bd = data["bd_seq"]
            if bd is not None and not (isinstance(bd, int) and 0 <= bd <= 255):
                raise ValueError(f"bd_seq {bd!r} is not 0-255")
            aliases = {
                str(dev): {str(tag): int(a) for tag, a in tags.items()}
                for dev, tags in data["aliases"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("Sparkplug state %s is not valid (%s): starting anew", self.path, exc)
            return
        self.bd_seq = bd
        self.aliases = aliases

    def next_bd_seq(self) -> int:
        """The bdSeq for the next CONNECT, saved before it is returned."""
        self.bd_seq = 0 if self.bd_seq is None else (self.bd_seq + 1) % 256
        self.save()
        return self.bd_seq

    def alias(self, device: str, tag: str) -> int:
        """The metric's alias; a new tag gets the next free one (call :meth:`save` after)."""
        tags = self.aliases.setdefault(device, {})
        found = tags.get(tag)
        if found is None:
            used = [a for t in self.aliases.values() for a in t.values()]
            found = tags[tag] = max(used, default=0) + 1
        return found

    def save(self) -> None:
        """Write the file atomically (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = json.dumps({"bd_seq": self.bd_seq, "aliases": self.aliases}, sort_keys=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
