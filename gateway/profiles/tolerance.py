"""Tolerable negative deviation (允许短缺量) of prepackaged goods by nominal quantity.

Source: JJF 1070-2005《定量包装商品净含量计量检验规则》table 3, as required by
《定量包装商品计量监督管理办法》(State Administration for Market Regulation order, 2023) art. 9.
Percentages are of the nominal quantity; absolute values in g (or ml). A range "a~b" covers
a < Qn ≤ b (the first row starts at 0).
"""

from __future__ import annotations

import math

__all__ = ["TOLERABLE_NEGATIVE_DEVIATION", "lower_limit_g", "tolerable_deviation_g"]

# (upper bound of Qn in g, kind, amount): kind "%" = percent of Qn, "g" = grams.
TOLERABLE_NEGATIVE_DEVIATION: tuple[tuple[float, str, float], ...] = (
    (50, "%", 9.0),
    (100, "g", 4.5),
    (200, "%", 4.5),
    (300, "g", 9.0),
    (500, "%", 3.0),
    (1_000, "g", 15.0),
    (10_000, "%", 1.5),
    (15_000, "g", 150.0),
    (50_000, "%", 1.0),
)


def tolerable_deviation_g(nominal_g: float) -> float:
    """T for a nominal quantity in grams; percentages rounded up to 0.1 g (JJF 1070 5.3)."""
    if not 0 < nominal_g <= 50_000:
        raise ValueError(f"nominal quantity {nominal_g} g is outside 0~50 kg (JJF 1070 table 3)")
    for upper, kind, amount in TOLERABLE_NEGATIVE_DEVIATION:
        if nominal_g <= upper:
            if kind == "g":
                return amount
            return math.ceil(round(nominal_g * amount / 100 * 10, 6)) / 10
    raise AssertionError("unreachable")  # pragma: no cover


def lower_limit_g(nominal_g: float) -> float:
    """The lowest net content an individual bag may have: Qn − T."""
    return round(nominal_g - tolerable_deviation_g(nominal_g), 1)
