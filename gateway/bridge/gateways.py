"""Which gateways a bridge stores events from, and the check that a message is theirs
(QB/T 5279-2018 11.4; docs/bridge.md, "Which gateways"; the signature: gateway/signing.py).

Anyone who can publish on the event topics could otherwise put records into the trace store
(a forged ``pack.bag`` from gateway ``not-our-gateway`` was stored, chained and verified
intact). A bridge knows the gateway of its own config (the key that gateway signs with) and
those listed in ``bridge.gateways``; a message from any other gateway, without a signature, or
with one that does not match is refused with :class:`~gateway.bridge.records.BadEvent` of
kind :data:`KIND`: the store quarantines it with the reason, and it is acknowledged, counted
(``saltgw_bridge_quarantined_messages{reason="unauthenticated"}``), never stored or chained.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING

from drivers.secrets import SecretError, secret
from gateway.bridge.records import BadEvent
from gateway.signing import MIN_KEY_CHARS, event_key, mac, signed_part

if TYPE_CHECKING:
    from gateway.config.models import ConfigBase

__all__ = ["KIND", "KnownGateways"]

KIND = "unauthenticated"


class KnownGateways:
    """Gateway id → signing key; :meth:`check` refuses what none of them signed."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = dict(keys)

    @property
    def ids(self) -> list[str]:
        return sorted(self._keys)

    @classmethod
    def from_config(cls, cfg: ConfigBase) -> KnownGateways:
        """The gateway of ``cfg`` (its own key: gateway/signing.py, :func:`event_key`) and the
        gateways of ``bridge.gateways``; a listed key that cannot be read is a
        :class:`SecretError` naming it."""
        keys: dict[str, bytes] = {}
        listed = cfg.bridge.gateways if cfg.bridge is not None else []
        for g in listed:
            what = f"bridge.gateways: signing key of gateway {g.id!r}"
            value = secret(g.key_env, g.key_file, what)
            if value is None:
                raise SecretError(f"{what}: environment variable {g.key_env!r} is not set")
            if len(value) < MIN_KEY_CHARS:
                raise SecretError(f"{what}: {len(value)} characters; at least {MIN_KEY_CHARS} "
                                  "are needed")  # fmt: skip
            keys[g.id] = value.encode()
        if cfg.gateway.id not in keys:  # the co-located gateway, unless listed otherwise
            keys[cfg.gateway.id] = event_key(cfg)
        return cls(keys)

    def check(self, gateway: str, payload: bytes, what: str = "event") -> None:
        """Nothing when ``payload`` is signed by ``gateway``'s key; :class:`BadEvent` (kind
        ``unauthenticated``) naming the gateway and why otherwise."""
        key = self._keys.get(gateway)
        if key is None:
            raise BadEvent(
                f"{what} from gateway {gateway!r}, which this bridge does not know "
                f"(known: {', '.join(self.ids)}; list it in bridge.gateways with its key)"[:500],
                KIND,
            )
        part = signed_part(payload)
        if part is None:
            raise BadEvent(
                f"{what} from gateway {gateway!r} carries no signature (a last member "
                '"sig" of 64 hex digits, docs/events.md#signature)',
                KIND,
            )
        body, sig = part
        if not hmac.compare_digest(mac(key, body), sig):
            raise BadEvent(
                f"{what} from gateway {gateway!r}: the signature does not match (altered "
                "after signing, or signed with another key than the bridge has for it)",
                KIND,
            )
