"""Configuration groups summarised over their seeds, and compared with a reference group on the same test
examples: what the report's table and the accuracy plot show.

A group with several seeds gets a t-interval over its seeds' test accuracies (and, where it is a third wider
or narrower, the two-level bootstrap interval over seeds and test examples beside it); a group with one run (the
deterministic SVM, or a single seed) a bootstrap interval over its test examples. Two groups are compared only
when their prediction files hold the same test examples (ids of one dataset) with the same labels: McNemar's
exact test when each has one run, otherwise the two-level paired bootstrap, which resamples each group's seeds
and the test examples (ftlab.stats.two_level_bootstrap), so that a new seed's variance counts. The p-values of
all rows compared with one reference are Holm-corrected together. Beside the test: almost stochastic order over
the seeds' accuracies where both groups have ASO_MIN_SEEDS seeds or more, and for a difference that is not
significant, the seeds per group that would detect it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ftlab.analysis import stats
from ftlab.errors import UserError
from ftlab.analysis.records import Group, run_labels
from ftlab.runs.record import RunRecord

NOT_COMPARABLE = "not comparable: different test examples"
MCNEMAR = "McNemar"
TWO_LEVEL = "bootstrap over seeds and examples"


@dataclass(eq=False)  # compared by identity: its fields hold numpy arrays
class Summary:
    group: Group
    test_accuracy: list[float]  # one per seed, in the group's run order
    test_f1: list[float]
    validation_accuracy: list[float]
    # 95% CI of the test accuracy: t over seeds, or bootstrap over examples for one run; None without either
    interval: Optional[tuple[float, float]]
    # Several seeds: the two-level bootstrap's interval (seeds and test examples resampled), kept only where its
    # width differs from the t-interval's by more than a third of the latter
    two_level_interval: Optional[tuple[float, float]] = None
    example_ids: Optional[np.ndarray] = None  # test examples, sorted by id; None without usable predictions
    labels: Optional[np.ndarray] = None
    correct: Optional[np.ndarray] = None  # (seeds, examples): 1.0 where the seed's prediction is right
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.test_accuracy)

    @property
    def dataset(self) -> str:
        return self.group.records[0].dataset

    @property
    def source(self) -> tuple[str, Optional[str]]:
        """Example ids name rows of a source split, so they mean the same examples only within one dataset from
        one origin (the hub's IMDB and its mirror number their rows differently)."""
        return self.dataset, self.group.records[0].data_origin


@dataclass
class Comparison:
    test: str  # MCNEMAR or TWO_LEVEL
    difference: float  # test accuracy of the row minus the reference's, on the shared examples
    p: float
    adjusted_p: float  # Holm over every row compared with the same reference
    verdict: str
    interval: Optional[tuple[float, float]] = None  # 95% interval of the difference (two-level bootstrap only)
    # ASO ε_min of (row better than reference, reference better than row); None below ASO_MIN_SEEDS a side
    aso: Optional[tuple[float, float]] = None
    # Not significant, several seeds a side: seeds per group to detect the difference (None: no number would)
    seeds_needed: Optional[int] = None
    seeds_estimated: bool = False  # whether seeds_needed was estimated at all (None then: no number would do)


# What the report shows in a row's comparison columns: a Comparison, "reference", NOT_COMPARABLE, or nothing.
Outcome = Union[Comparison, str]


def _test_predictions(record: RunRecord) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(example ids, labels, predictions) of the run's test split, sorted by id; None without a prediction file."""
    path = record.prediction_file("test")
    if path is None:
        return None
    import pandas as pd

    frame = pd.read_parquet(path, columns=["example_id", "label", "prediction"]).sort_values("example_id")
    return (frame["example_id"].to_numpy(dtype=str), frame["label"].to_numpy(dtype=np.int64),
            frame["prediction"].to_numpy(dtype=np.int64))


def summarise(group: Group) -> Summary:
    records = group.records
    summary = Summary(group, [r.accuracy("test") for r in records], [r.f1("test") for r in records],
                      [r.accuracy("validation") for r in records], None)
    seeds = [r.seed for r in records]
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:  # repeats, not independent seeds: the spread and the interval understate the variance
        summary.notes.append(f"seed {', '.join(map(str, repeated))} repeated")
    loaded = [_test_predictions(r) for r in records]
    if any(item is None for item in loaded):
        summary.notes.append("no per-example predictions" + (f" for {sum(item is None for item in loaded)} of "
                                                             f"{len(loaded)} runs" if len(loaded) > 1 else ""))
    elif all(np.array_equal(ids, loaded[0][0]) and np.array_equal(labels, loaded[0][1])
             for ids, labels, _ in loaded):
        summary.example_ids, summary.labels = loaded[0][0], loaded[0][1]
        summary.correct = np.stack([(predictions == labels).astype(float) for _, labels, predictions in loaded])
    else:
        summary.notes.append("seeds scored on different test examples")
    if summary.n > 1:
        summary.interval = stats.t_interval(summary.test_accuracy)
        if summary.correct is not None:
            bootstrap = stats.two_level_interval(summary.correct)
            t_width, bootstrap_width = summary.interval[1] - summary.interval[0], bootstrap[1] - bootstrap[0]
            if abs(bootstrap_width - t_width) > t_width / 3:
                summary.two_level_interval = bootstrap
    elif summary.correct is not None:
        summary.interval = stats.bootstrap_interval(summary.correct[0])
    return summary


def _same_examples(a: Summary, b: Summary) -> bool:
    return (a.source == b.source and np.array_equal(a.example_ids, b.example_ids)
            and np.array_equal(a.labels, b.labels))


def compare(summaries: list[Summary], reference: Summary) -> dict[str, Outcome]:
    """Group id -> outcome for every summary that can be set against the reference (others are left out)."""
    outcomes: dict[str, Outcome] = {reference.group.id: "reference"}
    # (summary, the Comparison's fields but the Holm-corrected p and the verdict, which need every row's p first)
    tested: list[tuple[Summary, dict[str, Any]]] = []
    for summary in summaries:
        if summary is reference or summary.correct is None or reference.correct is None:
            continue
        if not _same_examples(summary, reference):
            outcomes[summary.group.id] = NOT_COMPARABLE
        elif summary.n == 1 and reference.n == 1:
            tested.append((summary, {"test": MCNEMAR,
                                     "difference": float(summary.correct.mean() - reference.correct.mean()),
                                     "p": stats.mcnemar_exact(summary.correct[0], reference.correct[0])}))
        else:
            result = stats.two_level_bootstrap(summary.correct, reference.correct)
            tested.append((summary, {"test": TWO_LEVEL, "difference": result.difference, "p": result.p,
                                     "interval": result.interval, "aso": _aso(summary, reference)}))
    adjusted = stats.holm([fields["p"] for _, fields in tested])
    for (summary, fields), p_holm in zip(tested, adjusted):
        comparison = Comparison(**fields, adjusted_p=p_holm, verdict=stats.verdict(fields["difference"], p_holm))
        if comparison.verdict == stats.NOT_SIGNIFICANT and summary.n > 1 and reference.n > 1:
            comparison.seeds_needed = stats.seeds_needed(summary.correct, reference.correct)
            comparison.seeds_estimated = True
        outcomes[summary.group.id] = comparison
    return outcomes


def _aso(summary: Summary, reference: Summary) -> Optional[tuple[float, float]]:
    """ASO ε_min both ways over the seeds' test accuracies, where both groups have enough seeds for it."""
    if min(summary.n, reference.n) < stats.ASO_MIN_SEEDS:
        return None
    return (stats.aso_eps_min(summary.test_accuracy, reference.test_accuracy),
            stats.aso_eps_min(reference.test_accuracy, summary.test_accuracy))


def best_by_validation(summaries: list[Summary]) -> dict[str, Summary]:
    """Dataset -> the group with the best mean validation accuracy (the first of equals, in table order)."""
    best: dict[str, Summary] = {}
    for summary in summaries:
        current = best.get(summary.dataset)
        if current is None or np.mean(summary.validation_accuracy) > np.mean(current.validation_accuracy):
            best[summary.dataset] = summary
    return best


def find_group(name: str, groups: list[Group]) -> Group:
    """The group that `name` names: a group's name or id, or the name of one of its runs (as in --per_run)."""
    labels = run_labels([r for group in groups for r in group.records])
    for group in groups:
        if name in (group.name, group.id) or name in {labels[r.output_dir] for r in group.records}:
            return group
    raise UserError(f"--compare_to {name}: no run or group of that name or id "
                    f"(groups: {', '.join(group.name for group in groups)})")
