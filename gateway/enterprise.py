"""Who a gateway's enterprise is: a producer with an Annex A code, or a wholesaler with its
unified social credit code (docs/wholesale.md).

QB/T 5279-2018 Annex A.1 gives enterprise codes to salt *producers* only (食盐定点生产企业: 8 +
the last 3 digits of the certificate number; 多品种盐生产企业: 9 + …), and clause 6.2 puts that
code at the head of every traceability code. A wholesaler (批发企业, 5.2) prints no codes of its
own — it scans in and out the producers' codes (5.2, 8.3) — and has no Annex A code. It is named
by the identifier every Chinese enterprise has and the platform knows it by: the 18-character
unified social credit code (统一社会信用代码, GB 32100-2015), whose last character is a check
character over the first 17 (:func:`uscc_error`).

Both forms are safe in MQTT topics, URIs and file names (ASCII letters and digits).
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = [
    "ANNEX_A_RE",
    "ENTERPRISE_ID_RE",
    "USCC_RE",
    "EnterpriseKind",
    "enterprise_error",
    "uscc_check_char",
    "uscc_error",
]

EnterpriseKind = Literal["producer", "wholesaler"]

#: QB/T 5279-2018 Annex A.1: 8 or 9, then the last 3 digits of the producer's certificate number.
ANNEX_A_RE = r"^[89][0-9]{3}$"
#: GB 32100-2015: 18 characters of 0-9 and the capitals but I, O, S, V, Z.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_RE = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"
#: Either form (the event envelope's ``enterprise``, topics, document headers).
ENTERPRISE_ID_RE = r"^(?:[89][0-9]{3}|[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10})$"

_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)  # 3^(i) mod 31


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character (position 18) of the first 17 characters."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def uscc_error(v: str) -> str | None:
    """Why ``v`` is not a unified social credit code, or None when it is one."""
    if len(v) != 18:
        return f"a unified social credit code has 18 characters; {v!r} has {len(v)}"
    bad = sorted({c for c in v if c not in _USCC_CHARS})
    if bad:
        return (
            f"{v!r} holds {''.join(bad)!r}: a unified social credit code uses 0-9 and the "
            "capitals but I, O, S, V, Z (GB 32100-2015)"
        )
    if not v[2:8].isdigit():
        return f"characters 3-8 of {v!r} must be the 6-digit administrative division code"
    want = uscc_check_char(v[:17])
    if v[17] != want:
        return (
            f"check character of {v!r} is {v[17]!r}, expected {want!r} (GB 32100-2015): a "
            "typing mistake?"
        )
    return None


def enterprise_error(kind: EnterpriseKind, v: str) -> str | None:
    """Why ``v`` is not the enterprise id of an enterprise of ``kind``, or None."""
    if kind == "producer":
        if re.fullmatch(ANNEX_A_RE, v):
            return None
        hint = ""
        if uscc_error(v) is None:
            hint = " (this looks like a unified social credit code: set gateway.kind: wholesaler)"
        return (
            f"expected a 4-digit enterprise code starting with 8 or 9 (QB/T 5279-2018 "
            f"Annex A); got {v!r}{hint}"
        )
    why = uscc_error(v)
    if why is None:
        return None
    if re.fullmatch(ANNEX_A_RE, v):
        return (
            f"a wholesaler has no Annex A code (QB/T 5279-2018 Annex A lists producers): give "
            f"its 18-character unified social credit code (GB 32100-2015); got {v!r}"
        )
    return f"expected the wholesaler's unified social credit code: {why}"
