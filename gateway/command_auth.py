"""Who may send which MQTT command to which device (QB/T 5279-2018 11.4; docs/commands.md,
"Authorisation").

Commands are **closed by default**: without a ``commands:`` section every command is refused
(``not authorised``) and a line at start says so. ``commands: {mode: open}`` runs every
well-formed command, for laboratories only (a loud warning at start).

With a list of issuers, every command must name its ``issuer``; the issuer must be listed, and
one of its grants must cover the command and the device. An issuer with a key (HMAC-SHA256, from
an environment variable or an owner-only file, :mod:`drivers.secrets`) must sign: ``sig`` is the
hex HMAC of the command object without ``sig`` **plus the receiver** (``enterprise``, ``site``,
``line``, ``gateway``, ``device``: the gateway adds its own values before checking, so a command
signed for one line's gateway or device fails on every other one), serialised as JSON with
sorted keys, no spaces, UTF-8 (:func:`signing_bytes`). A signed command carries ``ts`` (RFC 3339
with offset) within ``max_age_secs`` of the gateway's clock, and an ``id`` the issuer has not
used in twice that window: used ids are kept in a small SQLite file beside the journal
(:class:`SeenIds`), so a replay after a restart is refused too.

A refusal says only ``not authorised`` on the wire (a probe learns nothing about issuers or
grants); the reason is in the gateway's log. The broker's ACL should still keep anyone but MES
off the ``cmd`` topics: the allow-list is the gateway's own check, not a replacement for it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.secrets import SecretError, secret

__all__ = [
    "Authoriser",
    "CommandAuthSection",
    "Grant",
    "Issuer",
    "NotAuthorised",
    "Receiver",
    "RecordKind",
    "SeenIds",
    "seen_path_for",
    "signing_bytes",
]

log = logging.getLogger(__name__)

CommandName = Literal["close_partial", "end_batch", "resync", "set_batch", "start_batch", "unpack"]
RecordKind = Literal["inspection", "material_receipt", "nonconforming", "release", "return"]
RECEIVER_FIELDS = ("device", "enterprise", "gateway", "line", "site")  # added before checking


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class Grant(_Strict):
    commands: list[CommandName] = Field(
        default_factory=list, description="Commands this grant allows."
    )
    devices: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Devices they may be sent to; '*' for every device.",
    )
    records: list[RecordKind] = Field(
        default_factory=list,
        description="Record kinds the issuer may send on …/record/{kind} (docs/records.md).",
    )

    @model_validator(mode="after")
    def _grants_something(self) -> Grant:
        if not self.commands and not self.records:
            raise ValueError("a grant needs commands or records (or both)")
        return self


class Issuer(_Strict):
    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="The issuer as commands name it (field `issuer`).",
    )
    key_env: str | None = Field(
        default=None, description="Environment variable holding the issuer's HMAC key."
    )
    key_file: Path | None = Field(
        default=None,
        description="File holding the issuer's HMAC key, owner-only (mode 0600); used when "
        "key_env is unset.",
    )
    allow: list[Grant] = Field(min_length=1, description="What the issuer may send where.")

    def signs(self) -> bool:
        return self.key_env is not None or self.key_file is not None


class CommandAuthSection(_Strict):
    mode: Literal["allow_list", "open"] = Field(
        default="allow_list",
        description="'allow_list': only the listed issuers, within their grants (signed). "
        "'open': every well-formed command runs, from anyone who can publish on the cmd "
        "topics - for laboratories and demos only (a warning at every start). Without a "
        "commands: section every command is refused.",
    )
    issuers: list[Issuer] = Field(
        default_factory=list,
        description="Who may send commands (at least one with mode allow_list; none with open).",
    )
    require_signature: bool = Field(
        default=True,
        description="Every issuer must have a key and sign its commands; set false only when "
        "the broker's ACL alone decides who may publish on the cmd topics.",
    )
    max_age_secs: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        description="A signed command's `ts` must be within this of the gateway's clock; its "
        "id is remembered (on disk) for twice this.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CommandAuthSection:
        if self.mode == "open":
            if self.issuers:
                raise ValueError("mode open takes no issuers (every command runs); remove them")
            return self
        if not self.issuers:
            raise ValueError("list at least one issuer (or mode: open, for laboratories only)")
        names = [i.name for i in self.issuers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"issuer {sorted(dup)[0]!r} is listed twice")
        if self.require_signature:
            unsigned = [i.name for i in self.issuers if not i.signs()]
            if unsigned:
                raise ValueError(
                    f"issuer {unsigned[0]!r} has no key_env or key_file, but "
                    "require_signature is true"
                )
        return self


class NotAuthorised(Exception):
    """The command is refused; the message says why (logged, never sent back)."""


def signing_bytes(obj: dict[str, Any], receiver: dict[str, str] | None = None) -> bytes:
    """What an issuer signs: the command object without ``sig``, plus the receiver's
    ``enterprise``, ``site``, ``line``, ``gateway`` and ``device`` (:meth:`Receiver.fields`),
    as canonical JSON."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    if receiver is not None:
        body.update(receiver)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Receiver:
    """The gateway a command is for: its own enterprise, site, line and id."""

    def __init__(self, enterprise: str, site: str, line: str, gateway: str) -> None:
        self.enterprise, self.site, self.line, self.gateway = enterprise, site, line, gateway

    def fields(self, device: str) -> dict[str, str]:
        return {
            "enterprise": self.enterprise,
            "site": self.site,
            "line": self.line,
            "gateway": self.gateway,
            "device": device,
        }


class SeenIds:
    """Command ids already used, per issuer, kept on disk for the freshness window so that a
    replay after a restart is refused too (a table ``seen`` in its own SQLite file)."""

    def __init__(self, path: Path | None) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self.db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS seen (issuer TEXT NOT NULL, id TEXT NOT NULL, "
            "at REAL NOT NULL, PRIMARY KEY (issuer, id)) WITHOUT ROWID"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS seen_at ON seen(at)")

    def claim(self, issuer: str, cmd_id: str, now: float, keep_secs: float) -> bool:
        """Record ``cmd_id`` as used; False when it was already used within ``keep_secs``."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("DELETE FROM seen WHERE at < ?", (now - keep_secs,))
                try:
                    self.db.execute(
                        "INSERT INTO seen(issuer, id, at) VALUES (?,?,?)", (issuer, cmd_id, now)
                    )
                except sqlite3.IntegrityError:
                    return False
                return True
            finally:
                self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def seen_path_for(journal: Path) -> Path:
    """Where a gateway keeps the ids of used commands: beside its journal
    (``var/journal.db`` → ``var/journal-commands.db``)."""
    return journal.with_name(f"{journal.stem}-commands.db")


class Authoriser:
    """Checks one command against the ``commands:`` section (None: closed); keys are read once,
    at start."""

    def __init__(
        self,
        cfg: CommandAuthSection | None,
        receiver: Receiver | None = None,
        seen_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.receiver = receiver
        self.issuers = {i.name: i for i in cfg.issuers} if cfg is not None else {}
        self.keys: dict[str, bytes] = {}
        for i in cfg.issuers if cfg is not None else ():
            if i.signs():
                key = secret(i.key_env, i.key_file, f"command key of issuer {i.name!r}")
                if key is None:
                    raise SecretError(
                        f"command key of issuer {i.name!r}: environment variable "
                        f"{i.key_env!r} is not set"
                    )
                self.keys[i.name] = key.encode()
        self.seen = SeenIds(seen_path) if self.keys else None

    @classmethod
    def open(cls) -> Authoriser:
        """Every well-formed command runs (``commands: {mode: open}``)."""
        return cls(CommandAuthSection(mode="open"))

    @property
    def mode(self) -> str:
        return "closed" if self.cfg is None else self.cfg.mode

    def announce(self) -> None:
        """The line at start that says who may send commands."""
        if self.cfg is None:
            log.info(
                "MQTT commands are closed: no commands: section in the config, every command "
                "is refused (docs/commands.md)"
            )
        elif self.cfg.mode == "open":
            log.warning(
                "MQTT COMMANDS ARE OPEN (commands: {mode: open}): anyone who can publish on "
                "the cmd topics can start batches and unpack cases - laboratories and demos "
                "only, never on a plant network (docs/commands.md)"
            )
        else:
            log.info(
                "MQTT commands allowed from %d issuer(s): %s",
                len(self.issuers),
                ", ".join(sorted(self.issuers)),
            )

    def close(self) -> None:
        if self.seen is not None:
            self.seen.close()

    def check(self, device: str, obj: dict[str, Any]) -> str:
        """The issuer's name if ``obj`` (a parsed command) may run on ``device``; else
        :class:`NotAuthorised` with the reason (for the log only)."""
        if self.cfg is None:
            raise NotAuthorised("commands are closed: the config has no commands: section")
        if self.cfg.mode == "open":
            name = obj.get("issuer")
            return name if isinstance(name, str) and name else "(open)"
        name = obj.get("issuer")
        if not isinstance(name, str) or not name:
            raise NotAuthorised("missing field 'issuer': commands on this line must name one")
        issuer = self.issuers.get(name)
        if issuer is None:
            raise NotAuthorised(f"issuer {name[:64]!r} is not listed")
        key = self.keys.get(name)
        if key is not None:  # who it is first; what it may do only once that is proven
            self._check_signature(name, key, device, obj)
        command = str(obj.get("command"))
        if not any(
            command in g.commands and ("*" in g.devices or device in g.devices)
            for g in issuer.allow
        ):
            may = "; ".join(
                f"{', '.join(g.commands)} to {', '.join(g.devices)}" for g in issuer.allow
            )
            raise NotAuthorised(
                f"issuer {name!r} may not send {command} to device {device!r} (it may send {may})"
            )
        if key is not None:
            self._claim(name, obj)
        return name

    def check_record(self, kind: str, obj: dict[str, Any]) -> str | None:
        """The issuer's name (None: open, and the sender named none) if ``obj`` (a parsed
        record message, docs/records.md) of ``kind`` may be journaled; else
        :class:`NotAuthorised`. Signed like a command, its receiver's ``device`` being
        ``record/{kind}``; the grant must list the kind under ``records``."""
        if self.cfg is None:
            raise NotAuthorised("records are closed: the config has no commands: section")
        name = obj.get("issuer")
        if self.cfg.mode == "open":
            return name if isinstance(name, str) and name else None
        if not isinstance(name, str) or not name:
            raise NotAuthorised("missing field 'issuer': records on this line must name one")
        issuer = self.issuers.get(name)
        if issuer is None:
            raise NotAuthorised(f"issuer {name[:64]!r} is not listed")
        key = self.keys.get(name)
        if key is not None:
            self._check_signature(name, key, f"record/{kind}", obj)
        if not any(kind in g.records for g in issuer.allow):
            raise NotAuthorised(f"issuer {name!r} may not send {kind} records")
        if key is not None:
            self._claim(name, obj)
        return name

    def _check_signature(self, name: str, key: bytes, device: str, obj: dict[str, Any]) -> None:
        sig = obj.get("sig")
        if not isinstance(sig, str) or not sig:
            raise NotAuthorised(f"missing field 'sig': issuer {name!r} must sign its commands")
        receiver = self.receiver.fields(device) if self.receiver is not None else None
        want = hmac.new(key, signing_bytes(obj, receiver), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            raise NotAuthorised(
                f"bad signature for issuer {name!r} (changed, signed with another key, or "
                f"signed for another gateway, line or device than {receiver})"
            )
        ts = obj.get("ts")
        try:
            issued = datetime.fromisoformat(str(ts))
        except ValueError:
            issued = None
        if issued is None or issued.tzinfo is None:
            raise NotAuthorised(f"ts must be an RFC 3339 time with offset; got {ts!r}")
        assert self.cfg is not None
        age = self.clock() - issued.timestamp()
        if abs(age) > self.cfg.max_age_secs:
            when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
            raise NotAuthorised(
                f"ts {ts} is {when} by the gateway's clock (at most "
                f"{self.cfg.max_age_secs:g} s either way)"
            )

    def _claim(self, name: str, obj: dict[str, Any]) -> None:
        assert self.cfg is not None and self.seen is not None
        cmd_id = str(obj.get("id"))
        if not self.seen.claim(name, cmd_id, self.clock(), 2 * self.cfg.max_age_secs):
            raise NotAuthorised(f"command id {cmd_id!r} of issuer {name!r} was already used")
