"""The device profiles saltgw ships, by name."""

from __future__ import annotations

from gateway.profiles.bag_scanner import BAG_SCANNER
from gateway.profiles.base import ProfileSpec
from gateway.profiles.checkweigher import CHECKWEIGHER
from gateway.profiles.iodine import IODINE
from gateway.profiles.line_plc import LINE_PLC
from gateway.profiles.magnet_rod import MAGNET_ROD
from gateway.profiles.material_feed import MATERIAL_FEED
from gateway.profiles.metal_detector import METAL_DETECTOR
from gateway.profiles.packing import CASE_PACKER, PALLET_BUILDER
from gateway.profiles.scan_kpi import SCAN_KPI
from gateway.profiles.shipping_scanner import INBOUND_SCANNER, OUTBOUND_SCANNER, RECALL_SCANNER
from gateway.profiles.sieve import SIEVE

__all__ = ["profile_specs"]

_BUILT_IN: tuple[ProfileSpec, ...] = (
    CHECKWEIGHER,
    METAL_DETECTOR,
    MAGNET_ROD,
    SIEVE,
    IODINE,
    LINE_PLC,
    MATERIAL_FEED,
    BAG_SCANNER,
    CASE_PACKER,
    PALLET_BUILDER,
    OUTBOUND_SCANNER,
    INBOUND_SCANNER,
    RECALL_SCANNER,
    SCAN_KPI,
)


def profile_specs() -> dict[str, ProfileSpec]:
    return {spec.name: spec for spec in _BUILT_IN}
