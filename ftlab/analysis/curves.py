"""Learning curves: accuracy against training-set size per method, a fitted inverse power law with bootstrap
bands, where one method's curve passes another's, what each point cost, and which points are worth their cost.

The curve is acc(n) = a - b * n^(-c) (Hestness et al. 2017: power-law learning curves; the accuracy approaches an
asymptote a), fitted by scipy.optimize.curve_fit within bounds that keep it a rising, saturating curve: 0 <= a <= 1,
b >= 0, 0 < c <= 2. It is fitted to each size's mean accuracy over seeds (with the same seeds at every size this
has the same least-squares solution as fitting every seed's point). A three-parameter curve needs three sizes.

Uncertainty comes from a bootstrap that redraws both sources of noise a point has: the training seeds (drawn with
replacement at each size, where a method has several) and the test examples (one redraw per bootstrap round, the
same examples for every point, so that curves of one round stay paired, as the paired tests pair them). Each round
refits every method; bands, extrapolations and crossover sizes are percentile intervals over the rounds.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
from scipy import optimize

from ftlab.analysis.compare import Summary
from ftlab.runs.record import RunRecord

BOUNDS = ([0.0, 0.0, 1e-3], [1.0, np.inf, 2.0])  # a, b, c
MIN_FIT_SIZES = 3
CONFIDENCE = 0.95
N_BOOTSTRAP = 1000
SEED = 0  # bootstrap seed: the same curve twice gives the same intervals
GRID_POINTS = 400  # log-spaced sizes on which bands are drawn and crossings searched


def power_law(n: Any, a: float, b: float, c: float) -> Any:
    """acc(n) = a - b * n^(-c): the asymptote a, approached as n^(-c)."""
    return a - b * np.power(np.asarray(n, dtype=float), -c)


def fit_power_law(sizes: Sequence[float], accuracy: Sequence[float]) -> Optional[np.ndarray]:
    """(a, b, c) by bounded least squares; None where fewer than three distinct sizes or the fit fails."""
    sizes, accuracy = np.asarray(sizes, dtype=float), np.asarray(accuracy, dtype=float)
    if len(np.unique(sizes)) < MIN_FIT_SIZES:
        return None
    # Start from a curve through the ends with c = 0.5: a just above the best point, b from the smallest one.
    c0 = 0.5
    a0 = min(1.0, float(accuracy.max()) + 0.01)
    b0 = max(1e-6, (a0 - float(accuracy[np.argmin(sizes)])) * float(sizes.min()) ** c0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(power_law, sizes, accuracy, p0=[a0, b0, c0], bounds=BOUNDS, maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    return params


def size_reaching(params: Optional[np.ndarray], target: float) -> Optional[float]:
    """The size at which a fitted curve reaches `target`; None where its asymptote stays below it."""
    if params is None:
        return None
    a, b, c = params
    if a <= target:
        return None
    if b == 0:
        return 0.0
    return float((b / (a - target)) ** (1.0 / c))


def crossings(params_a: np.ndarray, params_b: np.ndarray, low: float, high: float) -> list[float]:
    """Sizes in [low, high] where curve a - curve b changes sign (each refined by brentq), in increasing order."""
    grid = np.geomspace(low, high, GRID_POINTS)
    diff = power_law(grid, *params_a) - power_law(grid, *params_b)
    roots = []
    for i in np.flatnonzero(np.sign(diff[:-1]) * np.sign(diff[1:]) < 0):
        roots.append(float(optimize.brentq(lambda n: float(power_law(n, *params_a) - power_law(n, *params_b)),
                                           grid[i], grid[i + 1])))
    return roots


def pareto_front(costs: Sequence[Optional[float]], accuracy: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points: no other point costs no more and reaches at least as much accuracy,
    being strictly better in one of the two. Points without a cost (None) take no part."""
    known = [i for i, cost in enumerate(costs) if cost is not None]
    front = []
    for i in known:
        dominated = any(costs[j] <= costs[i] and accuracy[j] >= accuracy[i]
                        and (costs[j] < costs[i] or accuracy[j] > accuracy[i]) for j in known if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (costs[i], accuracy[i]))


def percentile_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Optional[tuple[float, float]]:
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(values) == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


@dataclass
class MethodCurve:
    """One method's points (sizes ascending) and what is fitted to them."""
    method: str
    sizes: list[int]
    summaries: list[Summary]  # one per size: its seeds' test accuracies, interval and per-example correctness
    params: Optional[np.ndarray] = None
    draws: Optional[np.ndarray] = None  # (rounds, 3) bootstrap refits; rows of nan where a refit failed
    no_fit: Optional[str] = None  # why there is no fit

    @property
    def mean_accuracy(self) -> list[float]:
        return [float(np.mean(s.test_score)) for s in self.summaries]


def _resampled_accuracy(summary: Summary, rng: np.random.Generator, examples: Optional[np.ndarray]) -> float:
    """One bootstrap round's accuracy of a point: its seeds redrawn, then its test examples (the round's draw)."""
    if summary.scores is None:  # no per-example predictions: only the seeds can be redrawn
        values = np.asarray(summary.test_score)
        return float(values[rng.integers(0, len(values), len(values))].mean())
    correct = summary.scores
    if len(correct) > 1:
        correct = correct[rng.integers(0, len(correct), len(correct))]
    if examples is not None:
        correct = correct[:, examples]
    return float(correct.mean())


def fit_curves(curves: list[MethodCurve], rounds: int = N_BOOTSTRAP, seed: int = SEED) -> None:
    """Fit each curve and its bootstrap rounds in place (see the module docstring)."""
    for curve in curves:
        if curve.summaries and not curve.summaries[0].task.higher_is_better:
            # a - b*n^-c rises to a ceiling in [0, 1]; a falling error (a regression's MSE) has no such ceiling.
            curve.no_fit = f"{curve.summaries[0].task.primary}: lower is better; the power law fits rising scores"
            continue
        curve.params = fit_power_law(curve.sizes, curve.mean_accuracy)
        if curve.params is None:
            curve.no_fit = (f"{len(curve.sizes)} size(s): the curve a - b*n^-c has three parameters and needs at "
                            f"least {MIN_FIT_SIZES} sizes" if len(curve.sizes) < MIN_FIT_SIZES
                            else "curve_fit found no bounded fit")
    fitted = [curve for curve in curves if curve.params is not None]
    if not fitted or rounds <= 0:
        return
    points = [s for curve in fitted for s in curve.summaries]
    # Test examples are redrawn only where every point was scored on the same ones (the curve's test split).
    shared = all(s.scores is not None and np.array_equal(s.example_ids, points[0].example_ids) for s in points)
    n_examples = len(points[0].example_ids) if shared else 0
    rng = np.random.default_rng(seed)
    draws = {curve.method: np.full((rounds, 3), np.nan) for curve in fitted}
    for round_ in range(rounds):
        examples = rng.integers(0, n_examples, n_examples) if shared else None
        for curve in fitted:
            accuracy = [_resampled_accuracy(s, rng, examples) for s in curve.summaries]
            params = fit_power_law(curve.sizes, accuracy)
            if params is not None:
                draws[curve.method][round_] = params
    for curve in fitted:
        curve.draws = draws[curve.method]


def band(curve: MethodCurve, grid: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The pointwise percentile band of the bootstrap curves on `grid`."""
    if curve.draws is None:
        return None
    valid = curve.draws[~np.isnan(curve.draws).any(axis=1)]
    if len(valid) == 0:
        return None
    values = np.stack([power_law(grid, *params) for params in valid])
    tail = 100 * (1 - CONFIDENCE) / 2
    return np.percentile(values, tail, axis=0), np.percentile(values, 100 - tail, axis=0)


def _valid_draws(curve: MethodCurve) -> list[Optional[np.ndarray]]:
    if curve.draws is None:
        return []
    return [None if np.isnan(params).any() else params for params in curve.draws]


def extrapolate(curve: MethodCurve, size: float) -> Optional[dict[str, Any]]:
    """The fitted accuracy at `size` with its bootstrap interval."""
    if curve.params is None:
        return None
    values = [float(power_law(size, *params)) for params in _valid_draws(curve) if params is not None]
    return {"size": size, "accuracy": float(power_law(size, *curve.params)),
            "interval": percentile_interval(values)}


def holdout_check(curve: MethodCurve, fit_up_to: int, rounds: int = N_BOOTSTRAP,
                  seed: int = SEED) -> Optional[dict[str, Any]]:
    """The honest test of an extrapolation: the curve fitted on its sizes up to `fit_up_to` only, its prediction
    (with the bootstrap interval) at every larger measured size, beside what was measured there. None where fewer
    than MIN_FIT_SIZES sizes lie at or below `fit_up_to`, or none above it."""
    kept = [i for i, size in enumerate(curve.sizes) if size <= fit_up_to]
    held_out = [i for i, size in enumerate(curve.sizes) if size > fit_up_to]
    if len(kept) < MIN_FIT_SIZES or not held_out:
        return None
    small = MethodCurve(curve.method, [curve.sizes[i] for i in kept], [curve.summaries[i] for i in kept])
    fit_curves([small], rounds=rounds, seed=seed)
    if small.params is None:
        return {"fit_up_to": fit_up_to, "fit": None, "no_fit": small.no_fit, "predictions": []}
    predictions = []
    means = curve.mean_accuracy
    for i in held_out:
        predicted = extrapolate(small, curve.sizes[i])
        measured = means[i]
        interval = predicted["interval"]
        predictions.append({"size": curve.sizes[i], "predicted": predicted["accuracy"], "predicted_interval": interval,
                            "measured": measured, "measured_interval": curve.summaries[i].interval,
                            "error": predicted["accuracy"] - measured,
                            "covered": None if interval is None else interval[0] <= measured <= interval[1]})
    return {"fit_up_to": fit_up_to, "fit": dict(zip("abc", map(float, small.params))), "no_fit": None,
            "predictions": predictions}


def crossover(first: MethodCurve, second: MethodCurve) -> Optional[dict[str, Any]]:
    """Where the two fitted curves cross within the measured sizes both share: the first crossing of the fit,
    the interval of the first crossing over the bootstrap rounds that have one, and the share of rounds that do."""
    if first.params is None or second.params is None:
        return None
    low, high = max(min(first.sizes), min(second.sizes)), min(max(first.sizes), max(second.sizes))
    if low >= high:
        return None
    roots = crossings(first.params, second.params, low, high)
    round_roots = [crossings(a, b, low, high) for a, b in zip(_valid_draws(first), _valid_draws(second))
                   if a is not None and b is not None]
    firsts = [found[0] for found in round_roots if found]
    above = "first" if power_law(low, *first.params) > power_law(low, *second.params) else "second"
    return {"methods": [first.method, second.method], "range": [low, high],
            "sizes": roots, "verdict": (f"crosses at n = {roots[0]:,.0f}" if roots else "no crossover in range"),
            "ahead_at_smallest": first.method if above == "first" else second.method,
            "interval": percentile_interval(firsts),
            "share_of_rounds_crossing": (len(firsts) / len(round_roots)) if round_roots else None}


def target_size(curve: MethodCurve, target: float) -> dict[str, Any]:
    """The smallest measured size whose mean accuracy reaches `target`, and the fitted size with its interval
    (over the rounds whose asymptote reaches it; the share of such rounds says how sure that is)."""
    measured = next((size for size, acc in zip(curve.sizes, curve.mean_accuracy) if acc >= target), None)
    rounds = [size_reaching(params, target) for params in _valid_draws(curve) if params is not None]
    reached = [size for size in rounds if size is not None]
    return {"target": target, "smallest_measured_size": measured, "fitted_size": size_reaching(curve.params, target),
            "fitted_interval": percentile_interval(reached),
            "share_of_rounds_reaching": (len(reached) / len(rounds)) if rounds else None}


def inference_ms_per_1000(records: Sequence[RunRecord]) -> Optional[float]:
    """What labelling costs a configuration: milliseconds per 1,000 texts at its runs' test-split evaluation
    throughput (as trained: torch, the evaluation batch size, on the machine that ran them), mean over seeds; None
    where no record measured it. `export --bench` measures a deployed model's cost (ftlab.bench.inference)."""
    rates = [record.metrics("test").get("samples_per_second") for record in records if "test" in record.splits]
    costs = [1e6 / rate for rate in rates if rate]
    return float(np.mean(costs)) if costs else None


@dataclass
class CostPoint:
    method: str
    size: int
    accuracy: float  # mean over seeds
    train_seconds: float  # mean over seeds
    train_flops: Optional[float]  # None where FLOPs mean nothing (the TF-IDF SVM)
    inference_ms_per_1000: Optional[float] = None  # inference_ms_per_1000 of its seeds
    on_time_front: bool = False
    on_flops_front: bool = False
    on_inference_front: bool = False
    notes: list[str] = field(default_factory=list)


def mark_fronts(points: list[CostPoint], higher_is_better: bool = True) -> None:
    """Flag the Pareto-optimal points of accuracy (the task's score; an MSE counts negated) against training time,
    against training FLOPs and against inference cost."""
    scores = [p.accuracy if higher_is_better else -p.accuracy for p in points]
    for i in pareto_front([p.train_seconds for p in points], scores):
        points[i].on_time_front = True
    for i in pareto_front([p.train_flops for p in points], scores):
        points[i].on_flops_front = True
    for i in pareto_front([p.inference_ms_per_1000 for p in points], scores):
        points[i].on_inference_front = True


def place(point: CostPoint, curve_points: list[CostPoint]) -> tuple[bool, list[int]]:
    """Where a recipe run outside the curve stands against the curve's time frontier: whether it is on the frontier
    (no curve point beats it on both accuracy and training time), and the indices of the curve's frontier points
    that reach a higher mean accuracy in no more training time. The curve's own frontier flags are left as they
    are, so adding a recipe never changes what the curve says about its points."""
    seconds = [p.train_seconds for p in curve_points] + [point.train_seconds]
    accuracy = [p.accuracy for p in curve_points] + [point.accuracy]
    on_front = len(curve_points) in pareto_front(seconds, accuracy)
    beaten_by = [i for i, p in enumerate(curve_points) if p.on_time_front and p.train_seconds <= point.train_seconds
                 and p.accuracy > point.accuracy]
    return on_front, beaten_by
