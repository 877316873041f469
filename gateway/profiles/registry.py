"""The device profiles saltgw ships, by name.

A profile's module (its config model, its events) is imported when the profile is first asked
for by name (:func:`profile_spec`): a gateway loads the profiles its map names, not all of them
(docs/performance.md, "Gateway memory"); :func:`profile_specs` loads every one (the JSON
Schema, a config with a mistake).
"""

from __future__ import annotations

from importlib import import_module

from gateway.profiles.base import ProfileSpec

__all__ = ["profile_names", "profile_spec", "profile_specs"]

#: name -> (module, attribute) of its ProfileSpec, in the order of the config's union (the
#: order ``expected one of …`` lists them in)
_BUILT_IN: dict[str, tuple[str, str]] = {
    "checkweigher": ("gateway.profiles.checkweigher", "CHECKWEIGHER"),
    "metal_detector": ("gateway.profiles.metal_detector", "METAL_DETECTOR"),
    "magnet_rod": ("gateway.profiles.magnet_rod", "MAGNET_ROD"),
    "sieve": ("gateway.profiles.sieve", "SIEVE"),
    "iodine": ("gateway.profiles.iodine", "IODINE"),
    "line_plc": ("gateway.profiles.line_plc", "LINE_PLC"),
    "material_feed": ("gateway.profiles.material_feed", "MATERIAL_FEED"),
    "bag_scanner": ("gateway.profiles.bag_scanner", "BAG_SCANNER"),
    "case_packer": ("gateway.profiles.packing", "CASE_PACKER"),
    "pallet_builder": ("gateway.profiles.packing", "PALLET_BUILDER"),
    "outbound_scanner": ("gateway.profiles.shipping_scanner", "OUTBOUND_SCANNER"),
    "inbound_scanner": ("gateway.profiles.shipping_scanner", "INBOUND_SCANNER"),
    "recall_scanner": ("gateway.profiles.shipping_scanner", "RECALL_SCANNER"),
    "scan_kpi": ("gateway.profiles.scan_kpi", "SCAN_KPI"),
}


def profile_names() -> tuple[str, ...]:
    """Every shipped profile's name (nothing is imported)."""
    return tuple(_BUILT_IN)


def profile_spec(name: str) -> ProfileSpec | None:
    """The profile ``name``, its module imported now if it was not; None when there is none."""
    where = _BUILT_IN.get(name)
    if where is None:
        return None
    spec = getattr(import_module(where[0]), where[1])
    assert isinstance(spec, ProfileSpec) and spec.name == name, (name, where)
    return spec


def profile_specs() -> dict[str, ProfileSpec]:
    """Every shipped profile by name (all their modules imported)."""
    out = {}
    for name in _BUILT_IN:
        spec = profile_spec(name)
        assert spec is not None
        out[name] = spec
    return out
