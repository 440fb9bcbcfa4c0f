"""The three problem types a run can be, in transformers' own names (`config.problem_type`), and what the rest of
the lab asks of each: its metrics and which of them is primary (the report's, the search's and the curve's), which
way is better, what one example scores in the paired tests, and whether McNemar's test applies.

Which task a run is, is decided once, from the flags and the label column (ftlab.data.labels), and recorded in the
run's record (`task`); everything else reads it from there. Light: the standard library only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
SHORT_FORMS = {"single_label": SINGLE_LABEL, "multi_label": MULTI_LABEL}

# Metrics where a smaller value is better; every other metric is better larger.
LOWER_IS_BETTER = frozenset({"loss", "mse", "mae", "hamming_loss"})
# The values a metric can take, which bound the tuning curves' bands (ftlab.analysis.tuning): rates, F1 scores and
# areas in [0, 1] (the default), correlations in [-1, 1], errors and losses from 0 without an upper bound.
METRIC_RANGES = {"pearson": (-1.0, 1.0), "spearman": (-1.0, 1.0), "mse": (0.0, float("inf")),
                 "mae": (0.0, float("inf")), "loss": (0.0, float("inf"))}


@dataclass(frozen=True)
class Task:
    problem_type: str
    short: str  # in tables and messages
    primary: str  # the record's metric that reports, searches, curves and paired tests use
    primary_label: str  # the primary metric in a column header ("acc", "F1 (examples)", "MSE")
    secondary: str  # the report's second metric column
    secondary_label: str
    per_example: str  # what one example scores in the paired tests, in words
    metrics: tuple[str, ...]  # the validation metrics --metric_for_best may name (loss for every task)
    mcnemar: bool  # one 0/1 outcome per example: McNemar's exact test applies to two single runs

    @property
    def higher_is_better(self) -> bool:
        return better_larger(self.primary)


TASKS = {task.problem_type: task for task in (
    Task(SINGLE_LABEL, "single-label", "accuracy", "acc", "f1", "F1", "1 where the prediction is right, else 0",
         ("accuracy", "f1", "macro_f1", "roc_auc", "pr_auc", "loss"), mcnemar=True),
    # Example-based F1 (scikit-learn's average="samples") is the mean of a per-example score, which the two-level
    # bootstrap resamples; micro- and macro-F1 pool over examples first and have no per-example part.
    Task(MULTI_LABEL, "multi-label", "samples_f1", "F1 (examples)", "macro_f1", "macro-F1",
         "the F1 of the example's predicted label set against its true set (1 where both are empty)",
         ("samples_f1", "micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "roc_auc", "loss"),
         mcnemar=False),
    Task(REGRESSION, "regression", "mse", "MSE", "pearson", "Pearson", "the squared error of the prediction",
         ("mse", "mae", "pearson", "spearman", "loss"), mcnemar=False),
)}
BEST_METRICS = tuple(dict.fromkeys(metric for task in TASKS.values() for metric in task.metrics))


def better_larger(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def metric_range(metric: str) -> tuple[float, float]:
    return METRIC_RANGES.get(metric, (0.0, 1.0))


def parse_problem_type(text: Any) -> Optional[str]:
    """--problem_type: transformers' names or the short forms single_label / multi_label; 'auto' (or nothing) infers
    it from the label column."""
    value = str(text).strip().lower()
    if value in ("", "auto", "none"):
        return None
    value = SHORT_FORMS.get(value, value)
    if value not in PROBLEM_TYPES:
        raise ValueError(value)
    return value


def get(problem_type: Optional[str]) -> Task:
    """The task of a problem type; a record from before tasks were recorded was single-label."""
    return TASKS[problem_type or SINGLE_LABEL]


def of_record(data: dict[str, Any]) -> Task:
    """The task a run's record says it was."""
    return get((data.get("task") or {}).get("problem_type"))
