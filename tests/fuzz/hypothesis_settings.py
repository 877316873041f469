"""Hypothesis settings of the fuzz tests: reproducible in CI, longer on demand.

By default every property runs a fixed number of examples, derandomized (the same examples on
every run) and without the example database, so a run depends on nothing but the code and the
whole folder stays within about a minute. ``SALTGW_FUZZ_SCALE=20 python -m pytest tests/fuzz``
runs twenty times the examples with fresh randomness and the database, to hunt for new failures;
a failure found that way becomes an ``@example`` of its test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["SCALE", "fuzz_settings"]

SCALE = max(1, int(os.environ.get("SALTGW_FUZZ_SCALE") or "1"))


def fuzz_settings(examples: int) -> settings:
    """Settings for a property worth ``examples`` examples in CI."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None if SCALE == 1 else settings().database,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.function_scoped_fixture,
        ],
        print_blob=True,
    )
