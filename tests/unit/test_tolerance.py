import pytest

from gateway.profiles.tolerance import lower_limit_g, tolerable_deviation_g


@pytest.mark.parametrize(
    ("nominal", "t"),
    [
        (5, 0.5),  # 9 % of 5 g = 0.45 → rounded up to 0.5
        (50, 4.5),
        (80, 4.5),
        (150, 6.8),  # 4.5 % = 6.75 → 6.8
        (200, 9.0),  # 4.5 % of 200 (upper bound of the 100~200 row)
        (250, 9.0),
        (400, 12.0),
        (500, 15.0),
        (800, 15.0),
        (1000, 15.0),
        (5000, 75.0),
        (10000, 150.0),
        (12000, 150.0),
        (25000, 250.0),
    ],
)
def test_jjf_1070_table(nominal: float, t: float) -> None:
    assert tolerable_deviation_g(nominal) == t


def test_contract_example_400g_bag() -> None:
    assert lower_limit_g(400) == 388.0  # the contract's {"lo": 388.0}


@pytest.mark.parametrize("bad", [0, -1, 50_001])
def test_outside_the_table_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="JJF 1070"):
        tolerable_deviation_g(bad)
