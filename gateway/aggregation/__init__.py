"""Bag → case → pallet aggregation and outbound/inbound/recall scanning, persistent in the
line's trace store (gateway/tracedb.py)."""

from gateway.aggregation.machine import Aggregator, BindResult, Refusal, UnpackResult
from gateway.aggregation.shipping import DIRECTIONS, Shipping, ShipResult
from gateway.aggregation.store import Item, Slot

__all__ = [
    "DIRECTIONS",
    "Aggregator",
    "BindResult",
    "Item",
    "Refusal",
    "ShipResult",
    "Shipping",
    "Slot",
    "UnpackResult",
]
