"""Per-step aggregates: the exact fast quantile the comparison judges read."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stageless.analysis.steps import linear_quantile

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(st.lists(finite, min_size=1, max_size=60), st.floats(min_value=0.0, max_value=1.0))
def test_linear_quantile_equals_numpy_to_the_last_bit(values: list[float], q: float) -> None:
    array = np.asarray(values, dtype=np.float64)
    assert linear_quantile(array.copy(), q) == float(np.quantile(array, q))


@given(st.lists(st.integers(0, 5), min_size=1, max_size=40))
def test_linear_quantile_with_many_ties_and_common_levels(values: list[int]) -> None:
    array = np.asarray(values, dtype=np.float64)
    for q in (0.0, 0.01, 0.5, 0.9, 0.99, 1.0):
        assert linear_quantile(array.copy(), q) == float(np.quantile(array, q))


def test_large_lognormal_samples_match_numpy() -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 999, 6_001):
        array = np.exp(rng.standard_normal(n)) * 100.0
        for q in (0.5, 0.99):
            assert linear_quantile(array.copy(), q) == float(np.quantile(array, q))
