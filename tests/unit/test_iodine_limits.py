"""GB 26878-2011 table 1 and the dosing formula."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from gateway.profiles.iodine import IodineProfileConfig
from gateway.profiles.iodine_limits import (
    IODINE_LEVELS,
    IODINE_PER_KIO3,
    iodine_from_dosing,
    iodine_limits,
)


def test_table_1_of_gb_26878() -> None:
    assert IODINE_LEVELS == {20: (14.0, 26.0), 25: (18.0, 33.0), 30: (21.0, 39.0)}
    assert iodine_limits(25) == (18.0, 33.0)  # the example and QB/T 5279 table 6 row 20


@pytest.mark.parametrize("level", sorted(IODINE_LEVELS))
def test_table_is_the_level_plus_minus_30_percent_rounded_half_up(level: int) -> None:
    lo, hi = IODINE_LEVELS[level]
    assert lo == math.floor(level * 0.7 + 0.5)
    assert hi == math.floor(level * 1.3 + 0.5)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of GB 26878-2011 table 1"):
        iodine_limits(35)
    with pytest.raises(ValidationError):
        IodineProfileConfig.model_validate(
            {"profile": "iodine", "device": "io1", "target_mg_kg": 35, "kio3_g_per_l": 50}
        )


def test_iodate_to_iodine_factor() -> None:
    assert abs(IODINE_PER_KIO3 - 126.904 / 214.001) < 1e-4


def test_dosing_formula_with_units() -> None:
    # 10 t/h of salt, 8.43 L/h of a 50 g/L KIO3 solution: 421.5 g KIO3/h = 249.95 g I/h
    assert iodine_from_dosing(10_000, 8.43, 50) == pytest.approx(24.995, abs=1e-3)
    # twice the salt, same dosing: half the iodine
    assert iodine_from_dosing(20_000, 8.43, 50) == pytest.approx(24.995 / 2, abs=1e-3)
    assert iodine_from_dosing(10_000, 0.0, 50) == 0.0
    with pytest.raises(ValueError, match="salt flow must be positive"):
        iodine_from_dosing(0, 8.43, 50)


def test_dosing_needs_the_solution_concentration() -> None:
    with pytest.raises(ValidationError, match="kio3_g_per_l"):
        IodineProfileConfig.model_validate(
            {"profile": "iodine", "device": "io1", "target_mg_kg": 25}
        )
    cfg = IodineProfileConfig.model_validate(
        {"profile": "iodine", "device": "io1", "target_mg_kg": 25, "source": "analyser"}
    )
    assert cfg.kio3_g_per_l is None
