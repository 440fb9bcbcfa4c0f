"""Tuning curves: how good a method gets with a tuning budget, and whether one method beats another over seeds.

- The expected best validation score after k trials (Dodge et al. 2019, "Show Your Work"), estimated without bias
  from N trials as the mean maximum of k trials drawn without replacement (Tang et al. 2020): opda's u-statistic
  (Lourie et al. 2024), `EmpiricalDistribution.u_tuning_curve`; the mean minimum where lower is better (MSE).
- A simultaneous confidence band for that curve from opda's confidence band for the score distribution's CDF (the
  Kolmogorov-Smirnov band, exact coverage for the CDF): the expected maximum of k draws, E[max] = ∫ 1 - F(x)^k dx
  over the scores' bounded support, falls as F rises, so the CDF band's upper and lower edges give the curve's lower
  and upper edges for every k at once, with at least the CDF band's coverage (tests/test_tuning_curves.py checks it
  by simulation). Where lower is better the same holds for E[min]; a metric without an upper bound (MSE) has no
  upper edge then, since the band's CDF may put mass at infinity.
- The budget from which the methods' ranking by expected best score no longer changes.
- The probability that a method's run beats another's (Bouthillier et al. 2021): the share of seed pairs in which it
  scores better, ties counted half.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

CONFIDENCE = 0.90  # the bands' coverage: opda's examples use 80-95%; 90% keeps ten-trial bands readable
SCORE_RANGE = (0.0, 1.0)  # accuracies and F1 scores: the support the band's edges may reach


@dataclass(frozen=True)
class TuningCurve:
    """Expected best score after k = 1..N trials, with its band (an edge the metric's range leaves unbounded is
    None); `seconds` is k times the mean trial's training seconds (the curve against compute); `minimize`: the best
    is the lowest."""
    trials: list[int]
    expected: list[float]
    lower: list[Optional[float]]
    upper: list[Optional[float]]
    seconds: list[float]
    minimize: bool = False


def expected_best(scores: Sequence[float], ks: Sequence[int], minimize: bool = False) -> np.ndarray:
    """The unbiased estimate of E[max of k trials] (E[min] with `minimize`) for each k, from the observed trials'
    scores (k > N: the best observed)."""
    from opda.nonparametric import EmpiricalDistribution

    return np.asarray(EmpiricalDistribution(np.asarray(scores, dtype=float)).u_tuning_curve(np.asarray(ks),
                                                                                           minimize=minimize),
                      dtype=float)


def expected_best_band(scores: Sequence[float], ks: Sequence[int], confidence: float = CONFIDENCE,
                       support: tuple[float, float] = SCORE_RANGE,
                       minimize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) edges of a simultaneous band for E[max of k trials] (E[min] with `minimize`), k in `ks`: a
    higher CDF means lower scores, so lower maxima and lower minima alike."""
    from opda.nonparametric import EmpiricalDistribution

    low_cdf, _, high_cdf = EmpiricalDistribution.confidence_bands(
        np.asarray(scores, dtype=float), confidence, a=support[0], b=support[1], method="ks")
    ks = np.asarray(ks)
    return (np.asarray(high_cdf.average_tuning_curve(ks, minimize=minimize), dtype=float),
            np.asarray(low_cdf.average_tuning_curve(ks, minimize=minimize), dtype=float))


def tuning_curve(scores: Sequence[float], trial_seconds: Sequence[float], confidence: float = CONFIDENCE,
                 support: tuple[float, float] = SCORE_RANGE, minimize: bool = False) -> TuningCurve:
    """The curve over k = 1..N for N finished trials (their validation scores and training seconds), for a metric
    whose values lie in `support` and whose best is the highest (or the lowest, `minimize`)."""
    ks = list(range(1, len(scores) + 1))
    lower, upper = expected_best_band(scores, ks, confidence, support, minimize)
    mean_seconds = float(np.mean(trial_seconds)) if len(trial_seconds) else 0.0

    def finite(edge: np.ndarray) -> list[Optional[float]]:
        return [float(value) if np.isfinite(value) else None for value in edge]

    return TuningCurve(trials=ks, expected=expected_best(scores, ks, minimize).tolist(), lower=finite(lower),
                       upper=finite(upper), seconds=[k * mean_seconds for k in ks], minimize=minimize)


def ranking(curves: dict[str, TuningCurve], k: int) -> list[str]:
    """The methods ordered by expected best score after k trials (the best first); a method with fewer trials
    counts its best observed."""
    def at(curve: TuningCurve) -> float:
        return curve.expected[min(k, len(curve.expected)) - 1]

    return sorted(curves, key=lambda name: at(curves[name]) if curves[name].minimize else -at(curves[name]))


def stable_budget(curves: dict[str, TuningCurve]) -> Optional[int]:
    """The smallest number of trials from which the ranking by expected best score is the one at the full budget
    for every larger budget; None without curves."""
    if not curves:
        return None
    budget = max(len(curve.trials) for curve in curves.values())
    final = ranking(curves, budget)
    stable = budget
    for k in range(budget - 1, 0, -1):
        if ranking(curves, k) != final:
            break
        stable = k
    return stable


def probability_of_improvement(scores_a: Sequence[float], scores_b: Sequence[float],
                               higher_is_better: bool = True) -> float:
    """P(a run of A scores better than a run of B: higher, or lower where lower is better), over all pairs of their
    seeds' scores; ties count half."""
    sign = 1.0 if higher_is_better else -1.0
    a, b = sign * np.asarray(scores_a, dtype=float)[:, None], sign * np.asarray(scores_b, dtype=float)[None, :]
    return float(np.mean((a > b) + 0.5 * (a == b)))
