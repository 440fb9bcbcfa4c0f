"""Confidence intervals and paired significance tests for comparing runs: pure functions on numpy arrays.

The distributions are scipy's (t.interval, bootstrap, binomtest); only Holm's step-down correction is written
here, because scipy has none (scipy.stats.false_discovery_control does Benjamini-Hochberg/Yekutieli, which
control another error rate).

Vocabulary: `correct` arrays hold each test example's score, one column per test example (and one row per seed
where there are several), the examples in the same order for both sides of a comparison: 1.0 where a run's
prediction equals the true label and 0.0 elsewhere for a single-label run (where the mean is the accuracy, and
McNemar applies), the example's F1 of its label set or its squared error for the other tasks (ftlab.tasks). The
bootstraps and intervals read any such scores; their calibration is checked by simulation in tests/test_stats.py
and tests/test_seed_variance.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

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


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, seed: int = SEED,
                     n_resamples: int = N_RESAMPLES) -> tuple[float, float]:
    """(accuracy of A - accuracy of B, two-sided p) for groups of seeds scored on the same examples, over the test
    examples alone. The report no longer uses it (two_level_bootstrap also resamples the seeds); it stays as the
    examples-only test that the calibration tests show failing across seeds.

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
                             n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    return difference, _shifted_p(result.bootstrap_distribution, difference)


@dataclass(frozen=True)
class PairedResult:
    difference: float  # mean accuracy of A - mean accuracy of B
    p: float  # two-sided
    interval: tuple[float, float]  # percentile interval of the difference (CONFIDENCE)


def _counts(rng: np.random.Generator, replicates: int, size: int) -> np.ndarray:
    """(replicates, size): how often each of `size` items is drawn in a resample of `size` with replacement."""
    draws = rng.integers(0, size, (replicates, size)) + size * np.arange(replicates)[:, None]
    return np.bincount(draws.ravel(), minlength=replicates * size).reshape(replicates, size)


def _example_counts(rng: np.random.Generator, replicates: int, weights: np.ndarray) -> np.ndarray:
    """(replicates, patterns): resamples of the test examples with replacement, counted per pattern (a column of
    the groups' stacked 0/1 table), `weights` being how many examples have each pattern. Few seeds leave few
    patterns (at most 2^seeds, most examples right or wrong for every seed), and one multinomial draw over them
    is several times faster than drawing every example; with many patterns the examples are drawn one by one."""
    examples = int(weights.sum())
    if 8 * len(weights) <= examples:
        return rng.multinomial(examples, weights / examples, size=replicates)
    draws = _counts(rng, replicates, examples)
    return np.add.reduceat(draws, np.r_[0, np.cumsum(weights)[:-1]], axis=1)


def _resampled_means(correct: np.ndarray, example_counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One group's mean accuracy in each replicate: its seeds resampled with replacement (drawn here), the test
    examples' patterns weighted by `example_counts` (replicates, patterns), drawn by the caller to pair groups.

    The seeds' part of each replicate (its deviation from the mean of all the group's seeds on the same resampled
    examples) is scaled by sqrt(k / (k - 1)): resampling k seeds gives their mean a variance of (k - 1) / k · s²/k,
    s² being the unbiased sample variance, a third too small for three seeds (the bootstrap's usual small-sample
    bias, corrected as the unbiased variance corrects the plug-in one)."""
    seeds = correct.shape[0]
    per_seed = example_counts @ correct.T / example_counts[0].sum()  # (replicates, seeds): accuracy on the resample
    centre = per_seed.mean(axis=1)
    if seeds == 1:
        return centre
    resampled = np.einsum("rs,rs->r", _counts(rng, len(example_counts), seeds), per_seed) / seeds
    return centre + np.sqrt(seeds / (seeds - 1)) * (resampled - centre)


def two_level_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, n_resamples: int = N_RESAMPLES,
                        seed: int = SEED, confidence: float = CONFIDENCE) -> PairedResult:
    """Difference in mean accuracy of two groups of seeds scored on the same examples, with a p-value and a
    percentile interval that carry both sources of variance: the seeds trained and the test examples drawn.

    Each replicate resamples, with replacement, the seeds of each group (independently: the groups' seeds are
    different trainings) and the test examples (the same resampled examples for both groups, which keeps the
    pairing); the statistic is the difference of the groups' mean accuracies over the resampled seeds and
    examples. This is the two-way ("pigeonhole", Owen 2007) bootstrap of a seeds x examples table, randomising
    over both as Bouthillier et al. (2021) recommend. The p-value reads the distribution shifted to the null, as
    `paired_bootstrap` does. A group with one run contributes no seed variance (right for a deterministic
    method such as the SVM; an understatement for one seed of a trained model).
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise ValueError("paired samples must cover the same examples")
    difference = float(a.mean() - b.mean())
    # Examples with the same 0/1 column over both groups' seeds are interchangeable: resample patterns.
    patterns, weights = np.unique(np.vstack([a, b]), axis=1, return_counts=True)
    a, b = patterns[:len(a)], patterns[len(a):]
    rng = np.random.default_rng(seed)
    resampled = np.empty(n_resamples)
    for start, stop in _chunks(n_resamples):
        example_counts = _example_counts(rng, stop - start, weights).astype(float)
        resampled[start:stop] = _resampled_means(a, example_counts, rng) - _resampled_means(b, example_counts, rng)
    return PairedResult(difference, _shifted_p(resampled, difference), _percentile(resampled, confidence))


def two_level_interval(correct: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                       confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of one group's mean accuracy with its seeds and its test examples resampled, as in
    `two_level_bootstrap`: the uncertainty of the mean over new seeds *and* new test examples, where the t-interval
    over seeds holds the test set fixed."""
    correct = np.atleast_2d(np.asarray(correct, dtype=float))
    patterns, weights = np.unique(correct, axis=1, return_counts=True)
    rng = np.random.default_rng(seed)
    resampled = np.concatenate([_resampled_means(patterns, _example_counts(rng, stop - start, weights)
                                                 .astype(float), rng)
                                for start, stop in _chunks(n_resamples)])
    return _percentile(resampled, confidence)


def _chunks(n_resamples: int, size: int = 1000) -> list[tuple[int, int]]:
    """Replicates in chunks, which keep the (replicates, examples) counts at a few MB."""
    return [(start, min(start + size, n_resamples)) for start in range(0, n_resamples, size)]


def _shifted_p(resampled: np.ndarray, difference: float) -> float:
    """Share of resampled differences at least as far from the observed one as the observed one is from zero,
    counting the observed difference as one resample (so p is never 0)."""
    # A small tolerance, so that resamples equal to 2x the difference count despite float rounding.
    at_least_as_far = np.sum(np.abs(resampled - difference) >= abs(difference) - 1e-12)
    return float((at_least_as_far + 1) / (len(resampled) + 1))


def _percentile(resampled: np.ndarray, confidence: float) -> tuple[float, float]:
    low, high = np.quantile(resampled, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


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


NOT_SIGNIFICANT = "no significant difference"


def verdict(difference: float, adjusted_p: float, alpha: float = ALPHA, higher_is_better: bool = True) -> str:
    """better / worse / no significant difference; a difference in a metric where lower is better (MSE) is better
    when it is negative."""
    if adjusted_p > alpha:
        return NOT_SIGNIFICANT
    return "better" if (difference > 0) == higher_is_better else "worse"


ASO_MIN_SEEDS = 5  # below this, the empirical score distributions are too coarse for ASO (Ulmer et al. 2022)


def aso_eps_min(scores_a: Sequence[float], scores_b: Sequence[float], confidence: float = CONFIDENCE,
                n_resamples: int = 1000, dt: float = 0.005, seed: int = SEED) -> float:
    """Almost stochastic order (del Barrio et al. 2018; Dror et al. 2019): ε_min, an upper confidence bound on how
    far the score distribution of A is from stochastically dominating B's. 0: A's scores are above B's at every
    quantile; 0.5: no order; 1: B dominates A. Dror et al. call A better where ε_min < 0.5, Ulmer et al. (2022)
    recommend a threshold of 0.2.

    The computation is deepsig's (`deepsig.aso`, version 1.2.8), written with numpy so that the lab need not
    depend on it (and vectorised over the bootstrap): the violation ratio is the share of the squared Wasserstein-2
    distance between the empirical quantile functions (on a grid of step dt) where B's quantile is above A's; its
    standard deviation comes from bootstrap resamples of both score lists (drawing from an empirical quantile
    function at uniform points is resampling with replacement); ε_min = ratio + z_confidence · σ / sqrt(nm/(n+m)),
    clipped to [0, 1]. Only the random draws differ from deepsig's (numpy's Generator here).
    """
    a, b = np.sort(np.asarray(scores_a, dtype=float)), np.sort(np.asarray(scores_b, dtype=float))
    ratio = float(_violation_ratios(a[None, :], b[None, :], dt)[0])
    rng = np.random.default_rng(seed)
    resampled_a = np.sort(a[rng.integers(0, len(a), (n_resamples, len(a)))], axis=1)
    resampled_b = np.sort(b[rng.integers(0, len(b), (n_resamples, len(b)))], axis=1)
    samples = _violation_ratios(resampled_a, resampled_b, dt)
    const = np.sqrt(len(a) * len(b) / (len(a) + len(b)))
    sigma = np.std(const * (samples - ratio))
    return float(np.clip(ratio - sigma / const * stats.norm.ppf(1 - confidence), 0.0, 1.0))


def _violation_ratios(sorted_a: np.ndarray, sorted_b: np.ndarray, dt: float) -> np.ndarray:
    """Violation ratio ε_W2 (Dror et al. 2019, eq. 4-5) of each row pair of sorted scores, on deepsig's grid."""
    t = np.arange(dt, 1, dt)

    def quantiles(sorted_scores: np.ndarray) -> np.ndarray:
        n = sorted_scores.shape[1]
        return sorted_scores[:, np.clip(np.ceil(n * t).astype(int) - 1, 0, n - 1)]

    f, g = quantiles(sorted_a), quantiles(sorted_b)
    diff = g - f
    distance = np.sum(diff ** 2 * dt, axis=1)
    violation = np.sum(np.where(f >= g, 0.0, diff)[:, 1:] ** 2 * dt, axis=1)  # deepsig leaves out the first point
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(distance == 0, 0.5, violation / distance)


POWER = 0.8


def seeds_needed(correct_a: np.ndarray, correct_b: np.ndarray, alpha: float = ALPHA, power: float = POWER,
                 max_seeds: int = 1000) -> Optional[int]:
    """Seeds per group that would detect the observed difference in mean accuracy at `alpha` (two-sided) with
    `power`, if it is real, from the observed variances; None where no number of seeds would (the test set's own
    sampling noise alone is too large for the difference: more test examples are needed, not more seeds).

    Method: a normal-approximation power calculation with t quantiles, on a two-level model of a seed's outcome
    on an example (a per-seed shift, the groups' per-example difference d_e, and per seed-and-example noise).
    With k seeds per group, the variance of the difference of the group means is
        V(k) = (s_a² + s_b²) / k + v_ex,
    s² being a group's sample variance of its seeds' accuracies on the test set (which holds the per-seed noise
    too; 0 for a group of one run) and v_ex = var(d_e) / n the test examples' part, which more seeds do not
    shrink: the variance over examples of (A's share of seeds right - B's), less each group's per-example noise
    that its seeds' shares still carry (the mean over examples of the variance over seeds of an example's
    outcome, divided by the seeds), floored at 0. The answer is the smallest k >= 2 with
    (t_{1-alpha/2} + t_{power}) · sqrt(V(k)) <= |difference|, t with 2k - 2 degrees of freedom.
    """
    a = np.atleast_2d(np.asarray(correct_a, dtype=float))
    b = np.atleast_2d(np.asarray(correct_b, dtype=float))
    difference = abs(a.mean() - b.mean())
    seed_variance, noise = 0.0, 0.0
    for x in (a, b):
        if len(x) > 1:
            seed_variance += float(np.var(x.mean(axis=1), ddof=1))
            noise += float(np.var(x, axis=0, ddof=1).mean()) / len(x)
    examples = a.shape[1]
    example_variance = max(0.0, float(np.var(a.mean(axis=0) - b.mean(axis=0), ddof=1)) - noise) / examples
    for k in range(2, max_seeds + 1):
        df = 2 * k - 2
        spread = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)
        if spread * np.sqrt(seed_variance / k + example_variance) <= difference:
            return k
    return None
