"""E-values against savvi and against the reference formulas computed independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from savvi.multinomial import Multinomial
from scipy import integrate, stats

from stageless.analysis.evalue import RatioGrid, log_beta_mixture


@pytest.mark.parametrize(
    ("s", "n", "theta0"),
    [(10, 40, 0.1), (3, 200, 0.05), (60, 100, 0.5), (0, 50, 0.25), (50, 50, 0.125), (7, 7, 0.5)],
)
def test_two_sided_beta_mixture_matches_savvi(s: int, n: int, theta0: float) -> None:
    oracle = Multinomial(0.05, np.array([1.0 - theta0, theta0]), k=100)
    # Feed savvi in three uneven pieces: its odds are path-independent, ours closed-form.
    pieces = [[(n - s) // 3, s // 2], [(n - s) // 3, s // 4], [0, 0]]
    pieces[2] = [(n - s) - pieces[0][0] - pieces[1][0], s - pieces[0][1] - pieces[1][1]]
    for failures, successes in pieces:
        oracle.update(np.array([failures, successes]))
    ours = float(log_beta_mixture(s, n, theta0, one_sided=False))
    assert ours == pytest.approx(math.log(oracle.odds), rel=1e-9, abs=1e-9)


def one_sided_by_quadrature(s: int, n: int, theta0: float, k: float = 100.0) -> float:
    """E = ∫_{θ>θ0} L(θ)/L(θ0) π(θ) dθ / π(θ > θ0), with the Beta prior's density."""
    a, b = k * theta0, k * (1 - theta0)
    log_l0 = s * math.log(theta0) + (n - s) * math.log1p(-theta0)

    def integrand(theta: float) -> float:
        log_l = s * math.log(theta) + (n - s) * math.log1p(-theta)
        return math.exp(log_l - log_l0 + stats.beta.logpdf(theta, a, b))

    mass, _ = integrate.quad(integrand, theta0, 1.0, limit=200, points=[min(0.999, 3 * theta0)])
    return mass / stats.beta.sf(theta0, a, b)


@pytest.mark.parametrize(
    ("s", "n", "theta0"), [(10, 40, 0.1), (60, 100, 0.5), (2, 100, 0.05), (30, 80, 0.3)]
)
def test_one_sided_beta_mixture_matches_the_integral(s: int, n: int, theta0: float) -> None:
    expected = one_sided_by_quadrature(s, n, theta0)
    ours = math.exp(float(log_beta_mixture(s, n, theta0)))
    assert ours == pytest.approx(expected, rel=1e-6)


def test_the_ratio_grid_matches_a_direct_binomial_mixture() -> None:
    # Three batches with different shares; each mixture component's likelihood ratio is the
    # product of binomial probabilities of the canary's share of that batch's events.
    batches = [(4, 30, 0.05), (9, 41, 0.10), (2, 2, 0.5)]
    grid = RatioGrid((1.0, 1.5))
    for canary, baseline, share in batches:
        grid.add(canary, baseline, share)
    i0 = grid.index(1.0)
    alternatives = grid.x[grid.x > 0]
    weights = np.exp(-0.5 * (alternatives / grid.scale) ** 2)
    weights /= weights.sum()

    def log_lik(r: float) -> float:
        total = 0.0
        for canary, baseline, share in batches:
            theta = share * r / (share * r + 1 - share)
            total += stats.binom.logpmf(canary, canary + baseline, theta)
        return total

    expected = sum(
        w * math.exp(log_lik(math.exp(x)) - log_lik(1.0))
        for w, x in zip(weights, alternatives, strict=True)
    )
    assert grid.log_e(i0, "greater") == pytest.approx(math.log(expected), rel=1e-9)


counts = st.integers(min_value=0, max_value=400)
shares = st.floats(min_value=0.01, max_value=0.99)


@given(s=counts, extra=counts, theta0=st.floats(min_value=0.01, max_value=0.99))
def test_beta_mixture_e_values_are_non_negative_and_finite(
    s: int, extra: int, theta0: float
) -> None:
    for one_sided in (True, False):
        log_e = float(log_beta_mixture(s, s + extra, theta0, one_sided=one_sided))
        assert not math.isnan(log_e)
        assert math.exp(min(log_e, 700.0)) >= 0.0
        assert log_e < math.inf


@given(st.lists(st.tuples(counts, counts, shares), min_size=1, max_size=8))
def test_swapping_the_arms_mirrors_the_ratio(batches: list[tuple[int, int, float]]) -> None:
    # Canary and baseline swapped (share 1 - share) is the same evidence about 1/r.
    grid, mirrored = RatioGrid(), RatioGrid()
    for canary, baseline, share in batches:
        grid.add(canary, baseline, share)
        mirrored.add(baseline, canary, 1.0 - share)
    i0 = grid.index(1.0)
    assert grid.log_e(i0, "two") == pytest.approx(mirrored.log_e(i0, "two"), rel=1e-7, abs=1e-7)
    assert grid.log_e(i0, "greater") == pytest.approx(
        mirrored.log_e(i0, "less"), rel=1e-7, abs=1e-7
    )


@given(st.lists(st.tuples(counts, counts, shares), min_size=1, max_size=8), st.integers(0, 7))
def test_one_more_canary_event_never_lowers_the_fail_e_value(
    batches: list[tuple[int, int, float]], which: int
) -> None:
    grid, more = RatioGrid(), RatioGrid()
    for i, (canary, baseline, share) in enumerate(batches):
        grid.add(canary, baseline, share)
        more.add(canary + (i == which % len(batches)), baseline, share)
    i0 = grid.index(1.0)
    assert more.log_e(i0, "greater") >= grid.log_e(i0, "greater") - 1e-9


def test_bounds_bracket_the_estimate_and_shrink_with_data() -> None:
    small, large = RatioGrid(), RatioGrid()
    for _ in range(10):
        small.add(4, 36, 0.1)  # canary rate twice the baseline's (4/0.1 vs 36/0.9 ... r = 1)
    for _ in range(100):
        large.add(4, 36, 0.1)
    threshold = math.log(40)
    for grid in (small, large):
        estimate = grid.estimate()
        assert estimate is not None
        assert grid.lower_bound(threshold) < estimate < grid.upper_bound(threshold)
        assert estimate == pytest.approx(1.0, rel=0.02)
    assert large.upper_bound(threshold) - large.lower_bound(threshold) < (
        small.upper_bound(threshold) - small.lower_bound(threshold)
    )
    assert RatioGrid().estimate() is None
    assert RatioGrid().lower_bound(threshold) == 0.0
    assert RatioGrid().upper_bound(threshold) == math.inf
