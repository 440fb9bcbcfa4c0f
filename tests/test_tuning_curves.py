"""The statistics of `compare`'s tuning curves, checked by simulation: the expected-best estimator equals a
brute-force expected maximum, its band covers the true curve at least as often as it says (minus a stated
tolerance), the stable budget and the probability of improvement on cases worked by hand; where lower is better
(MSE), the expected minimum, ranked lowest first."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from ftlab.analysis.tuning import (CONFIDENCE, TuningCurve, expected_best, expected_best_band,
                                   probability_of_improvement, ranking, stable_budget, tuning_curve)


@pytest.mark.parametrize("seed", range(5))
def test_expected_best_is_the_mean_maximum_over_every_subset_of_k_trials(seed):
    """Tang et al.'s unbiased estimator: the mean, over all C(N, k) subsets of the N observed trials, of the
    subset's best; checked against that enumeration (ties included)."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.beta(8, 3, size=8), 2 if seed % 2 else 6)  # rounded: ties among trials
    ks = list(range(1, 9))
    brute = [np.mean([max(subset) for subset in itertools.combinations(scores, k)]) for k in ks]
    np.testing.assert_allclose(expected_best(scores, ks), brute, rtol=0, atol=1e-12)


def _true_expected_max(distribution, k: int) -> float:
    """E[max of k independent draws] of a distribution on [0, 1]: the integral of 1 - F(x)^k."""
    return integrate.quad(lambda x: 1 - distribution.cdf(x) ** k, 0, 1)[0]


# The band is conservative by construction (it holds whenever the CDF band does); over 300 studies the observed
# coverage of a 90% band may still fall below 90% by chance: 2.5 points is about 1.5 standard errors.
TOLERANCE = 0.025


@pytest.mark.parametrize("distribution, trials", [(stats.beta(8, 3), 10), (stats.beta(2, 2), 10),
                                                  (stats.beta(30, 4), 20)])
def test_the_band_covers_the_true_expected_best_curve_at_least_at_its_level(distribution, trials):
    ks = np.arange(1, trials + 1)
    truth = np.array([_true_expected_max(distribution, k) for k in ks])
    rng = np.random.default_rng(0)
    studies, covered = 300, 0
    for _ in range(studies):
        scores = distribution.rvs(size=trials, random_state=rng)
        lower, upper = expected_best_band(scores, ks)
        covered += bool(np.all((lower <= truth + 1e-12) & (truth <= upper + 1e-12)))
    assert covered / studies >= CONFIDENCE - TOLERANCE, covered / studies


def test_a_curve_rises_with_the_budget_and_its_band_holds_the_estimate():
    curve = tuning_curve([0.80, 0.70, 0.85, 0.60, 0.82], [10.0, 12.0, 11.0, 9.0, 8.0])
    assert curve.trials == [1, 2, 3, 4, 5]
    assert curve.expected == sorted(curve.expected) and curve.expected[-1] == pytest.approx(0.85)
    assert curve.expected[0] == pytest.approx(np.mean([0.80, 0.70, 0.85, 0.60, 0.82]))
    assert all(lo <= e <= hi for lo, e, hi in zip(curve.lower, curve.expected, curve.upper))
    assert curve.seconds == pytest.approx([10.0 * k for k in range(1, 6)])


def _curve(expected: list[float]) -> TuningCurve:
    n = len(expected)
    return TuningCurve(list(range(1, n + 1)), expected, expected, expected, [0.0] * n)


def test_the_stable_budget_is_where_the_ranking_stops_changing():
    # B leads after one trial, A from three on: the ranking is stable from k = 3.
    curves = {"a": _curve([0.70, 0.78, 0.84, 0.86]), "b": _curve([0.75, 0.79, 0.80, 0.81])}
    assert stable_budget(curves) == 3
    assert stable_budget({"a": _curve([0.9, 0.9]), "b": _curve([0.5, 0.6])}) == 1
    assert stable_budget({}) is None


def test_probability_of_improvement_counts_seed_pairs_and_halves_ties():
    assert probability_of_improvement([0.9, 0.8], [0.7, 0.6]) == 1.0
    assert probability_of_improvement([0.7, 0.6], [0.9, 0.8]) == 0.0
    # pairs: (0.8>0.7) (0.8=0.8) (0.6<0.7) (0.6<0.8): (1 + 0.5) / 4
    assert probability_of_improvement([0.8, 0.6], [0.7, 0.8]) == pytest.approx(0.375)


def test_where_lower_is_better_the_curve_is_the_expected_minimum_and_the_lowest_ranks_first():
    errors = [0.40, 0.55, 0.30, 0.70, 0.45]
    curve = tuning_curve(errors, [1.0] * 5, support=(0.0, math.inf), minimize=True)
    assert curve.expected == sorted(curve.expected, reverse=True) and curve.expected[-1] == pytest.approx(0.30)
    assert curve.expected == pytest.approx((-expected_best([-e for e in errors], range(1, 6))).tolist())
    # An MSE has no upper bound: the band's worst case is unbounded, its best case is not.
    assert all(0.0 <= lo <= e for lo, e in zip(curve.lower, curve.expected)) and curve.upper == [None] * 5
    worse = tuning_curve([e + 0.2 for e in errors], [1.0] * 5, support=(0.0, math.inf), minimize=True)
    assert ranking({"worse": worse, "better": curve}, 5) == ["better", "worse"]
    assert probability_of_improvement([0.3, 0.4], [0.5, 0.6], higher_is_better=False) == 1.0
