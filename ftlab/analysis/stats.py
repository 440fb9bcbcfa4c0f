"""Confidence intervals and paired significance tests for comparing runs: pure functions on numpy arrays.

The distributions are scipy's (t.interval, bootstrap, binomtest); only Holm's step-down correction is written
here, because scipy has none (scipy.stats.false_discovery_control does Benjamini-Hochberg/Yekutieli, which
control another error rate).

Vocabulary: `correct` arrays hold 1.0 where a run's prediction equals the true label, 0.0 elsewhere, one column
per test example (and one row per seed where there are several), the examples in the same order for both sides
of a comparison.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
CONFIDENCE = 0.95
N_RESAMPLES = 9999
SEED = 0  # bootstrap resampling seed: the same report twice gives the same intervals and p-values


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval for the mean over seeds: Student's t with n-1 degrees of freedom around the mean, scaled by the
    standard error (sample sd / sqrt(n)). Needs two values or more; identical values give a zero-width interval
    (scipy's t.interval would return nan for a zero scale)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        raise ValueError("a t-interval needs at least two values")
    mean, sem = float(values.mean()), float(stats.sem(values))
    if sem == 0.0:
        return mean, mean
    low, high = stats.t.interval(confidence, df=len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def bootstrap_interval(correct: np.ndarray, confidence: float = CONFIDENCE, seed: int = SEED) -> tuple[float, float]:
    """Interval for one run's accuracy from its test examples: percentile bootstrap over examples. (BCa, scipy's
    default, is undefined when every resample has the same accuracy, e.g. a run that gets all examples right.)"""
    correct = np.asarray(correct, dtype=float)
    if correct.min() == correct.max():
        value = float(correct[0])
        return value, value
    result = stats.bootstrap((correct,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar test for two runs on the same examples: under "equally good", each example that
    exactly one run gets right is equally likely to be either run's, so the count of those A alone got right is
    Binomial(discordant, 1/2). No discordant example: p = 1."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """(accuracy of A - accuracy of B, two-sided p) for groups of seeds scored on the same examples.

    Each group's seeds are pooled per example (the share of its seeds that got the example right), and examples
    are resampled with replacement, the same examples for both groups (scipy.stats.bootstrap, paired=True), which
    keeps the pairing and treats the test set as the sample, as the paired tests in NLP do (Dror et al. 2018).
    The p-value is the share of resampled differences at least as far from the observed one as the observed one
    is from zero (the bootstrap distribution shifted to satisfy the null, Efron & Tibshirani 1993 ch. 16;
    Berg-Kirkpatrick et al. 2012), counting the observed difference as one resample so it is never 0. Reading it
    off the unshifted distribution's tails (where the percentile interval excludes zero) is far too small when the
    difference comes from a few discordant examples: for 7 examples only A got right and none only B got right,
    that gives p = 0.002 where McNemar's exact test gives 0.016; the shifted version gives ~0.014.
    """
    pooled_a = np.atleast_2d(np.asarray(correct_a, dtype=float)).mean(axis=0)
    pooled_b = np.atleast_2d(np.asarray(correct_b, dtype=float)).mean(axis=0)
    if pooled_a.shape != pooled_b.shape:
        raise ValueError("paired samples must cover the same examples")
    difference = float(pooled_a.mean() - pooled_b.mean())
    if np.array_equal(pooled_a, pooled_b):
        return difference, 1.0  # every resample differs by exactly 0

    def mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis=axis) - b.mean(axis=axis)

    result = stats.bootstrap((pooled_a, pooled_b), mean_difference, paired=True, vectorized=True, batch=1000,
                             n_resamples=N_RESAMPLES, method="percentile", rng=np.random.default_rng(seed))
    resampled = result.bootstrap_distribution
    # A small tolerance, so that resamples equal to 2x the difference count despite float rounding.
    at_least_as_far = np.sum(np.abs(resampled - difference) >= abs(difference) - 1e-12)
    return difference, float((at_least_as_far + 1) / (len(resampled) + 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: the k-th smallest of m is multiplied by m - k + 1,
    made non-decreasing in that order and capped at 1. Rejecting where adjusted p <= alpha keeps the chance of
    any false "better"/"worse" among the m comparisons at most alpha."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


def verdict(difference: float, adjusted_p: float, alpha: float = ALPHA) -> str:
    if adjusted_p > alpha:
        return "no significant difference"
    return "better" if difference > 0 else "worse"
