"""The URI scheme of salt codes and other identifiers in EPCIS documents (docs/platform-xml.md).

A traceability code (QB/T 5279-2018 6.2) is the 4-digit enterprise code followed by the
in-house random code; it is unique on its own, so its URI is simply::

    urn:saltgw:code:{code}            e.g. urn:saltgw:code:8035K7Q2M9X4TZ

Case and pallet codes use the same form (8.4: a new packaging level gets its own code, kept in
relation with the codes inside). Other identifiers::

    urn:saltgw:batch:{enterprise}:{batch}                 a batch (CCP records' epcClass)
    urn:saltgw:loc:{enterprise}:{site}:{line}             read point of a line
    urn:saltgw:device:{enterprise}:{site}:{line}:{device} sensor device
    urn:saltgw:order:{enterprise}:{order}                 outbound order (bizTransaction)
    urn:saltgw:party:{customer}                           the customer (destination)
    urn:saltgw:ccp:{kind}                                 a CCP measurement type
    urn:saltgw:loc:{enterprise}:{site}                    a site (bizLocation, master data)
    urn:saltgw:product:{enterprise}:{product}             a product (EPCClass master data)
    urn:saltgw:material:{enterprise}:{material}[:{lot}]   a material fed (feed.material)
    urn:saltgw:recall:{enterprise}:{recall}               a recall (bizTransaction)
    urn:saltgw:mda:{name}                                 a master data attribute

Every part is percent-encoded (RFC 3986 unreserved characters kept, UTF-8 otherwise), so any
printable code or Chinese customer name gives a valid ``xsd:anyURI``; :func:`code_of` reverses
:func:`code_uri`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

__all__ = [
    "CODE_PREFIX",
    "batch_uri",
    "ccp_uri",
    "code_of",
    "code_uri",
    "device_uri",
    "location_uri",
    "lot_uri",
    "material_uri",
    "mda_uri",
    "order_uri",
    "party_uri",
    "product_uri",
    "recall_uri",
    "site_uri",
]

CODE_PREFIX = "urn:saltgw:code:"
_SAFE = "-._~"  # RFC 3986 unreserved, besides letters and digits
_PLAIN = re.compile(r"[A-Za-z0-9\-._~]+")  # nothing to encode (fast path: most codes)


def _p(part: str) -> str:
    return part if _PLAIN.fullmatch(part) else quote(part, safe=_SAFE)


def code_uri(code: str) -> str:
    if (code.isalnum() and code.isascii()) or _PLAIN.fullmatch(code):  # the usual code: as is
        return CODE_PREFIX + code
    return CODE_PREFIX + quote(code, safe=_SAFE)


def code_of(uri: str) -> str:
    if not uri.startswith(CODE_PREFIX):
        raise ValueError(f"not a saltgw code URI: {uri!r}")
    return unquote(uri[len(CODE_PREFIX) :])


def batch_uri(enterprise: str, batch: str) -> str:
    return f"urn:saltgw:batch:{_p(enterprise)}:{_p(batch)}"


def location_uri(enterprise: str, site: str, line: str) -> str:
    return f"urn:saltgw:loc:{_p(enterprise)}:{_p(site)}:{_p(line)}"


def device_uri(enterprise: str, site: str, line: str, device: str) -> str:
    return f"urn:saltgw:device:{_p(enterprise)}:{_p(site)}:{_p(line)}:{_p(device)}"


def order_uri(enterprise: str, order: str) -> str:
    return f"urn:saltgw:order:{_p(enterprise)}:{_p(order)}"


def party_uri(customer: str) -> str:
    return f"urn:saltgw:party:{_p(customer)}"


def ccp_uri(kind: str) -> str:
    return f"urn:saltgw:ccp:{_p(kind)}"


def site_uri(enterprise: str, site: str) -> str:
    return f"urn:saltgw:loc:{_p(enterprise)}:{_p(site)}"


def product_uri(enterprise: str, product: str) -> str:
    return f"urn:saltgw:product:{_p(enterprise)}:{_p(product)}"


def material_uri(enterprise: str, material: str, lot: str | None) -> str:
    tail = "" if lot is None else f":{_p(lot)}"
    return f"urn:saltgw:material:{_p(enterprise)}:{_p(material)}{tail}"


def lot_uri(enterprise: str, lot: str) -> str:
    """A material lot whose material is not named (a lab inspection of a lot)."""
    return f"urn:saltgw:lot:{_p(enterprise)}:{_p(lot)}"


def recall_uri(enterprise: str, recall: str) -> str:
    return f"urn:saltgw:recall:{_p(enterprise)}:{_p(recall)}"


def mda_uri(name: str) -> str:
    return f"urn:saltgw:mda:{_p(name)}"
