"""Iodine content of iodized edible salt (碘盐) and how a doser's flows give it.

Source: GB 26878-2011《食品安全国家标准 食用盐碘含量》:

* 3.1 — the average iodine content (as I) of iodized salt is 20 mg/kg to 30 mg/kg;
* 3.2 — the allowed fluctuation is that average level ± 30 %;
* 3.3 — each province picks its level from table 1, which gives the allowed ranges:

    ======================  ==========================
    selected level (mg/kg)  allowed iodine content (mg/kg)
    ======================  ==========================
    20                      14 ~ 26
    25                      18 ~ 33
    30                      21 ~ 39
    ======================  ==========================

Table 1 rounds ± 30 % to whole mg/kg (25 × 0.7 = 17.5 → 18, 25 × 1.3 = 32.5 → 33). We use the
table's figures, not the unrounded products: they are what a pack's label states (QB/T
5279-2018 7.7 table 6 row 20 gives "碘含量（以I计）：（18~33）mg/kg" as the example) and what an
inspector checks against. Bounds are inclusive; a value is compared after rounding to 0.01 mg/kg.

GB 26878-2011 2.2 names potassium iodate (KIO3) as the fortificant to use; a doser sprays a KIO3
solution of known concentration onto the salt stream, so (units in brackets)::

    iodine [mg I / kg salt] = Q_sol [L/h] × c [g KIO3 / L] × 1000 [mg/g] × 0.5930 / Q_salt [kg/h]

where 0.5930 = M(I) / M(KIO3) = 126.904 / 214.001 is the mass fraction of iodine in KIO3.
"""

from __future__ import annotations

__all__ = ["IODINE_LEVELS", "IODINE_PER_KIO3", "iodine_from_dosing", "iodine_limits"]

#: GB 26878-2011 table 1: selected level → (lowest, highest) allowed iodine content, mg/kg.
IODINE_LEVELS: dict[int, tuple[float, float]] = {
    20: (14.0, 26.0),
    25: (18.0, 33.0),
    30: (21.0, 39.0),
}

#: Mass fraction of iodine in potassium iodate: M(I) / M(KIO3) = 126.904 / 214.001.
IODINE_PER_KIO3 = 0.5930


def iodine_limits(level_mg_kg: int) -> tuple[float, float]:
    """The allowed range for a selected level (GB 26878-2011 table 1)."""
    try:
        return IODINE_LEVELS[level_mg_kg]
    except KeyError:
        levels = ", ".join(str(k) for k in IODINE_LEVELS)
        raise ValueError(
            f"iodine level {level_mg_kg} mg/kg is not one of GB 26878-2011 table 1 ({levels})"
        ) from None


def iodine_from_dosing(salt_kg_h: float, solution_l_h: float, kio3_g_per_l: float) -> float:
    """Iodine content in mg/kg of salt dosed with ``solution_l_h`` of a ``kio3_g_per_l`` KIO3
    solution per ``salt_kg_h`` of salt (see the module docstring); ``salt_kg_h`` must be > 0."""
    if salt_kg_h <= 0:
        raise ValueError(f"salt flow must be positive, got {salt_kg_h} kg/h")
    return solution_l_h * kio3_g_per_l * 1000.0 * IODINE_PER_KIO3 / salt_kg_h
