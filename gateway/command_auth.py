"""Who may send which MQTT command to which device (QB/T 5279-2018 11.4; docs/commands.md,
"Authorisation").

With a ``commands:`` section in the config, every command must name its ``issuer``; the issuer
must be listed, and one of its grants must cover the command and the device. An issuer with a
key (HMAC-SHA256, from an environment variable or an owner-only file, :mod:`drivers.secrets`)
must sign: ``sig`` is the hex HMAC of the command object without ``sig``, serialised as JSON
with sorted keys, no spaces, UTF-8 (:func:`signing_bytes`); a signed command carries ``ts``
(RFC 3339 with offset) within ``max_age_secs`` of the gateway's clock, and an ``id`` it has not
used in that window (replays are refused). The broker's ACL should still keep anyone but MES off
the ``cmd`` topics: the allow-list is the gateway's own check, not a replacement for it.

Without a ``commands:`` section every well-formed command is executed (as before; a warning is
logged at start).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.secrets import SecretError, secret

__all__ = ["Authoriser", "CommandAuthSection", "Grant", "Issuer", "NotAuthorised", "signing_bytes"]

CommandName = Literal["close_partial", "end_batch", "resync", "set_batch", "start_batch", "unpack"]
REPLAY_MEMORY = 10_000  # (issuer, id) pairs remembered at most


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Grant(_Strict):
    commands: list[CommandName] = Field(min_length=1, description="Commands this grant allows.")
    devices: list[str] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Devices they may be sent to; '*' for every device.",
    )


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
    issuers: list[Issuer] = Field(min_length=1, description="Who may send commands.")
    require_signature: bool = Field(
        default=True,
        description="Every issuer must have a key and sign its commands; set false only when "
        "the broker's ACL alone decides who may publish on the cmd topics.",
    )
    max_age_secs: float = Field(
        default=120.0,
        gt=0,
        le=86400,
        description="A signed command's `ts` must be within this of the gateway's clock.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CommandAuthSection:
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
    """The command is refused; the message says why."""


def signing_bytes(obj: dict[str, Any]) -> bytes:
    """What an issuer signs: the command object without ``sig``, canonical JSON."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class Authoriser:
    """Checks one command against the allow-list; keys are read once, at start."""

    def __init__(self, cfg: CommandAuthSection, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.issuers = {i.name: i for i in cfg.issuers}
        self.keys: dict[str, bytes] = {}
        for i in cfg.issuers:
            if i.signs():
                key = secret(i.key_env, i.key_file, f"command key of issuer {i.name!r}")
                if key is None:
                    raise SecretError(
                        f"command key of issuer {i.name!r}: environment variable "
                        f"{i.key_env!r} is not set"
                    )
                self.keys[i.name] = key.encode()
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check(self, device: str, obj: dict[str, Any]) -> str:
        """The issuer's name if ``obj`` (a parsed command) may run on ``device``."""
        name = obj.get("issuer")
        if not isinstance(name, str) or not name:
            raise NotAuthorised("missing field 'issuer': commands on this line must name one")
        issuer = self.issuers.get(name)
        if issuer is None:
            raise NotAuthorised(f"issuer {name!r} may not send commands")
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
        key = self.keys.get(name)
        if key is not None:
            self._check_signature(name, key, obj)
        return name

    def _check_signature(self, name: str, key: bytes, obj: dict[str, Any]) -> None:
        sig = obj.get("sig")
        if not isinstance(sig, str) or not sig:
            raise NotAuthorised(f"missing field 'sig': issuer {name!r} must sign its commands")
        want = hmac.new(key, signing_bytes(obj), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            raise NotAuthorised(f"bad signature for issuer {name!r}")
        ts = obj.get("ts")
        try:
            issued = datetime.fromisoformat(str(ts))
        except ValueError:
            issued = None
        if issued is None or issued.tzinfo is None:
            raise NotAuthorised(f"ts must be an RFC 3339 time with offset; got {ts!r}")
        now = self.clock()
        age = now - issued.timestamp()
        if abs(age) > self.cfg.max_age_secs:
            when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
            raise NotAuthorised(
                f"ts {ts} is {when} by the gateway's clock (at most "
                f"{self.cfg.max_age_secs:g} s either way)"
            )
        key_id = (name, str(obj.get("id")))
        seen = self._seen
        while seen and (
            len(seen) >= REPLAY_MEMORY
            or next(iter(seen.values())) < now - 2 * self.cfg.max_age_secs
        ):
            seen.popitem(last=False)
        if key_id in seen:
            raise NotAuthorised(f"command id {key_id[1]!r} of issuer {name!r} was already used")
        seen[key_id] = now
