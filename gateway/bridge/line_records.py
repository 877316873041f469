"""The line's records uploaded besides codes, packing, CCP and outbound (issue 13: every record
reaches the platform): what each must carry, checked when it is stored.

Each is uploaded (QB/T 5279-2018 6.3, 11.2) and one record long (``weight`` 1):

- ``feed.material``: table 2 row 1 投料信息 (material, lot, quantity, operator, point, time);
- ``pack.reject``: table 3 row 3 不合格产品处置记录; a rejected bag's code is decommissioned and,
  when it was in a case, taken out of it;
- ``ship.inbound``: 5.2 入库扫描 (a wholesaler's inbound scan), table 3 row 5 出入库信息;
- ``recall.scan``: 10.6 召回扫码登记.

``batch.start`` (and ``batch.end``) may also carry the shift (班组) and the person in charge
(负责人) of table 2 row 2: ``shift`` (the line PLC's shift tag: text or a number) and
``person_in_charge`` (text, from the MES). Shapes: docs/events.md; a payload that breaks them is
quarantined with the reason.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from gateway.bridge.records import BadEvent, Parsed, bag_codes
from gateway.bridge.records import _code as check_code  # one rule for codes, everywhere

__all__ = ["UPLOADED", "check_line_record", "label"]

UPLOADED = frozenset({"feed.material", "pack.reject", "ship.inbound", "recall.scan"})
LEVELS = ("bag", "case", "pallet", "unknown")
# the order/recall id and the other party of a scan, by type
SCAN_KEYS = {"ship.inbound": ("order", "supplier"), "recall.scan": ("recall", "party")}


def _fail(where: str, key: str, want: str, got: Any) -> BadEvent:
    return BadEvent(f"{where}{key} must be {want}; got {got!r}"[:300])


def _text(d: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    v = d.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v.strip():
        raise _fail(where, key, "a non-empty string" + (" or null" if optional else ""), v)
    return v


def _is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _int(d: dict[str, Any], key: str, where: str, minimum: int) -> None:
    v = d.get(key)
    if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < minimum):
        raise _fail(where, key, f"an integer >= {minimum} or null", v)


def label(v: Any) -> str | None:
    """A PLC tag's value passed on as it is (text or a number), as text; None stays None."""
    if v is None or isinstance(v, str):
        return v
    return str(v)


def _label(d: dict[str, Any], key: str, where: str) -> None:
    v = d.get(key)
    if v is not None and not isinstance(v, str) and not _is_number(v):
        raise _fail(where, key, "text, a number or null", v)


def check_line_record(ev: Parsed) -> None:
    """Check the data of the types above and mark them uploadable (``up``, ``weight``,
    ``codes``); other types are left alone. Raises :class:`BadEvent` with the reason."""
    d, t = ev.data, ev.type
    where = f"{t}: data."
    if t == "feed.material":
        _text(d, "material", where)
        q = d.get("quantity")
        if not (_is_number(q) and q > 0):
            raise _fail(where, "quantity", "a number > 0", q)
        _text(d, "unit", where)
        _text(d, "lot", where, optional=True)
        _label(d, "point", where)
        _label(d, "operator", where)
        _int(d, "count", where, 0)
    elif t == "pack.reject":
        _text(d, "reason", where)
        code, case = d.get("code"), d.get("case")
        if code is not None:
            ev.codes = [check_code(code, where + "code")]
        if case is not None:
            if code is None:
                raise BadEvent(f"{where}case names a case but no code says which bag left it")
            check_code(case, where + "case")
        if d.get("commissioned") is not None and not isinstance(d["commissioned"], bool):
            raise _fail(where, "commissioned", "true, false or null", d["commissioned"])
        if d.get("value") is not None and not _is_number(d["value"]):
            raise _fail(where, "value", "a number or null", d["value"])
        _text(d, "unit", where, optional=True)
        _int(d, "count", where, 0)
        _int(d, "detection", where, 0)
    elif t in SCAN_KEYS:
        ev.codes = [check_code(d.get("code"), where + "code")]
        if d.get("level") is not None and d["level"] not in LEVELS:
            raise _fail(where, "level", " | ".join(LEVELS), d["level"])
        ref, party = SCAN_KEYS[t]
        _text(d, ref, where, optional=True)
        _text(d, party, where, optional=True)
        _int(d, "bags", where, 1)
        ev.up, ev.weight = True, 1 + len(bag_codes(d, where))
        return
    elif t in ("batch.start", "batch.end"):
        _label(d, "shift", where)
        _text(d, "person_in_charge", where, optional=True)
        return
    else:
        return
    ev.up, ev.weight = True, 1
