"""Configuration groups summarised over their seeds, and compared with a reference group on the same test
examples: what the report's table and the accuracy plot show.

Every figure is the run's task's primary metric (ftlab.tasks: accuracy, example-based F1, MSE), and the paired
tests read each test example's score under that metric (1/0 for right/wrong, the example's F1 of its label set,
its squared error), whose mean over examples is the metric. A group with several seeds gets a t-interval over its
seeds' test scores (and, where it is a third wider or narrower, the two-level bootstrap interval over seeds and
test examples beside it); a group with one run (the deterministic SVM, or a single seed) a bootstrap interval over
its test examples. Two groups are compared only when they are one task on the same test examples (ids of one
dataset) with the same labels: McNemar's exact test when each has one run of a single-label task (one right/wrong
outcome per example), otherwise the two-level paired bootstrap, which resamples each group's seeds and the test
examples (ftlab.stats.two_level_bootstrap), so that a new seed's variance counts. The p-values of all rows
compared with one reference are Holm-corrected together; "better" is a higher score, or a lower one for a metric
where lower is better (MSE). Beside the test: almost stochastic order over the seeds' scores where both groups
have ASO_MIN_SEEDS seeds or more, and for a difference that is not significant, the seeds per group that would
detect it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ftlab import tasks
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
    test_score: list[float]  # the task's primary metric on test, one per seed, in the group's run order
    test_secondary: list[float]  # the task's second metric (F1, macro-F1, Pearson)
    validation_score: list[float]
    # 95% CI of the test accuracy: t over seeds, or bootstrap over examples for one run; None without either
    interval: Optional[tuple[float, float]]
    # Several seeds: the two-level bootstrap's interval (seeds and test examples resampled), kept only where its
    # width differs from the t-interval's by more than a third of the latter
    two_level_interval: Optional[tuple[float, float]] = None
    example_ids: Optional[np.ndarray] = None  # test examples, sorted by id; None without usable predictions
    labels: Optional[np.ndarray] = None
    scores: Optional[np.ndarray] = None  # (seeds, examples): each example's score (ftlab.tasks: per_example)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.test_score)

    @property
    def dataset(self) -> str:
        return self.group.records[0].dataset

    @property
    def task(self) -> tasks.Task:
        """The records' task; a summary built from scores alone (no records) is a single-label one."""
        return self.group.records[0].task if self.group.records else tasks.get(None)

    @property
    def source(self) -> tuple[Any, ...]:
        """Example ids name rows of a source split, so they mean the same examples only within one dataset from
        one origin (the hub's IMDB and its mirror number their rows differently); and scores are comparable only
        within one task on one set of labels (disaster_response's categories and its `request` column)."""
        first = self.group.records[0]
        return self.dataset, first.data_origin, self.task.problem_type, tuple(first.label_names)


@dataclass
class Comparison:
    test: str  # MCNEMAR or TWO_LEVEL
    difference: float  # test score of the row minus the reference's, on the shared examples
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


def example_scores(task: tasks.Task, labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Each example's score under the task's primary metric, whose mean over the examples is that metric: 1/0 for a
    right/wrong class, the F1 of a predicted label set against the true one, the squared error of a number."""
    if task.problem_type == tasks.MULTI_LABEL:
        from ftlab.training.metrics import samples_f1

        return samples_f1(labels, predictions)
    if task.problem_type == tasks.REGRESSION:
        return (np.asarray(predictions, dtype=float) - np.asarray(labels, dtype=float)) ** 2
    return (np.asarray(predictions) == np.asarray(labels)).astype(float)


def _test_predictions(record: RunRecord) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(example ids, labels, each example's score) of the run's test split, sorted by id; None without a prediction
    file. Multi-label files hold a label_<name> and a prediction_<name> column per label (ftlab.runs.predictions)."""
    path = record.prediction_file("test")
    if path is None:
        return None
    import pandas as pd

    frame = pd.read_parquet(path).sort_values("example_id")
    task = record.task
    if task.problem_type == tasks.MULTI_LABEL:
        names = record.label_names
        labels = frame[[f"label_{name}" for name in names]].to_numpy(dtype=np.int64)
        predictions = frame[[f"prediction_{name}" for name in names]].to_numpy(dtype=np.int64)
    else:
        kind = np.float64 if task.problem_type == tasks.REGRESSION else np.int64
        labels, predictions = frame["label"].to_numpy(dtype=kind), frame["prediction"].to_numpy(dtype=kind)
    return frame["example_id"].to_numpy(dtype=str), labels, example_scores(task, labels, predictions)


def summarise(group: Group) -> Summary:
    records = group.records
    summary = Summary(group, [r.score("test") for r in records], [r.secondary("test") for r in records],
                      [r.score("validation") for r in records], None)
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
        summary.scores = np.stack([scores for _, _, scores in loaded])
    else:
        summary.notes.append("seeds scored on different test examples")
    if summary.n > 1:
        summary.interval = stats.t_interval(summary.test_score)
        if summary.scores is not None:
            bootstrap = stats.two_level_interval(summary.scores)
            t_width, bootstrap_width = summary.interval[1] - summary.interval[0], bootstrap[1] - bootstrap[0]
            if abs(bootstrap_width - t_width) > t_width / 3:
                summary.two_level_interval = bootstrap
    elif summary.scores is not None:
        summary.interval = stats.bootstrap_interval(summary.scores[0])
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
        if summary is reference or summary.scores is None or reference.scores is None:
            continue
        if not _same_examples(summary, reference):
            outcomes[summary.group.id] = NOT_COMPARABLE
        elif summary.n == 1 and reference.n == 1 and summary.task.mcnemar:
            tested.append((summary, {"test": MCNEMAR,
                                     "difference": float(summary.scores.mean() - reference.scores.mean()),
                                     "p": stats.mcnemar_exact(summary.scores[0], reference.scores[0])}))
        else:
            result = stats.two_level_bootstrap(summary.scores, reference.scores)
            tested.append((summary, {"test": TWO_LEVEL, "difference": result.difference, "p": result.p,
                                     "interval": result.interval, "aso": _aso(summary, reference)}))
    adjusted = stats.holm([fields["p"] for _, fields in tested])
    for (summary, fields), p_holm in zip(tested, adjusted):
        comparison = Comparison(**fields, adjusted_p=p_holm, verdict=stats.verdict(
            fields["difference"], p_holm, higher_is_better=reference.task.higher_is_better))
        if comparison.verdict == stats.NOT_SIGNIFICANT and summary.n > 1 and reference.n > 1:
            comparison.seeds_needed = stats.seeds_needed(summary.scores, reference.scores)
            comparison.seeds_estimated = True
        outcomes[summary.group.id] = comparison
    return outcomes


def _aso(summary: Summary, reference: Summary) -> Optional[tuple[float, float]]:
    """ASO ε_min both ways over the seeds' test accuracies, where both groups have enough seeds for it."""
    if min(summary.n, reference.n) < stats.ASO_MIN_SEEDS:
        return None
    # ASO reads "A's scores above B's" as A better: a metric where lower is better goes in negated.
    sign = 1.0 if reference.task.higher_is_better else -1.0
    row, ref = sign * np.asarray(summary.test_score), sign * np.asarray(reference.test_score)
    return stats.aso_eps_min(row, ref), stats.aso_eps_min(ref, row)


def best_by_validation(summaries: list[Summary]) -> list[Summary]:
    """Per dataset (and task, and label set), the group with the best mean validation score (the first of equals,
    in table order)."""
    best: dict[Any, Summary] = {}
    for summary in summaries:
        key = summary.source
        current = best.get(key)
        sign = 1.0 if summary.task.higher_is_better else -1.0
        if current is None or sign * np.mean(summary.validation_score) > sign * np.mean(current.validation_score):
            best[key] = summary
    return list(best.values())


def find_group(name: str, groups: list[Group]) -> Group:
    """The group that `name` names: a group's name or id, or the name of one of its runs (as in --per_run)."""
    labels = run_labels([r for group in groups for r in group.records])
    for group in groups:
        if name in (group.name, group.id) or name in {labels[r.output_dir] for r in group.records}:
            return group
    raise UserError(f"--compare_to {name}: no run or group of that name or id "
                    f"(groups: {', '.join(group.name for group in groups)})")
