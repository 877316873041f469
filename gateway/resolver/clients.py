"""Who is asking: the client's address behind trusted proxies, and its network as the query's
place (QB/T 5279 table 5 #3 地点).

From a peer inside ``resolver.trusted_proxies`` the client is the right-most address of
X-Forwarded-For that is not itself a trusted proxy (each proxy appends the address it saw;
what the client wrote itself sits further left and is not believed). From any other peer the
peer is the client, whatever headers it sends.

The place stored is the client's network, IPv4 /24 or IPv6 /48, never the full address:
enough to tell a code scanned in many towns from one scanned many times in one household, and
no more personal data than that needs (a query record is not 消费者信息).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["ClientResolver", "place_of"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=16_384)  # per request otherwise; bounded whatever a flood of addresses does
def _canonical(text: str) -> str | None:
    addr = _address(text)
    return None if addr is None else str(addr)


@lru_cache(maxsize=16_384)
def place_of(address: str) -> str:
    """The network a client address belongs to: ``203.0.113.0/24``, ``2001:db8:1::/48``;
    ``unknown`` for something that is not an address."""
    addr = _address(address)
    if addr is None:
        return "unknown"
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


class ClientResolver:
    """The client address of a request, believing X-Forwarded-For only from trusted proxies."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in trusted
        )

    def _is_trusted(self, addr: IPAddress | None) -> bool:
        return addr is not None and any(
            addr.version == net.version and addr in net for net in self.trusted
        )

    def client(self, peer: str, forwarded_for: str | None) -> str:
        if not self.trusted or not forwarded_for:
            canonical = _canonical(peer)
            return canonical if canonical is not None else peer
        addr = _address(peer)
        if not self._is_trusted(addr):
            return str(addr) if addr is not None else peer
        for hop in reversed(forwarded_for.split(",")[:32]):
            hop_addr = _address(hop)
            if hop_addr is None:
                break  # garbage: stop at the last hop a trusted proxy vouched for
            addr = hop_addr
            if not self._is_trusted(hop_addr):
                break
        return str(addr)
