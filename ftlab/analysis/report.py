"""The report's tables: one row per configuration group (the seeds of one configuration, ftlab.analysis.records),
with its spread over seeds, a 95% confidence interval and a paired significance test against a reference group
(ftlab.analysis.compare); `per_run` adds a row per run. The full table goes to report.md and report.csv; the
terminal gets its compact form (group, method, runs, accuracy with its interval, Δ, p, verdict). The command is
ftlab.commands.report.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ftlab.analysis import stats
from ftlab import methods, tasks
from ftlab.analysis.compare import (NOT_COMPARABLE, TWO_LEVEL, Comparison, Outcome, Summary, best_by_validation,
                                    compare, find_group, summarise)
from ftlab.analysis.records import Group, run_labels
from ftlab.runs.directory import write_atomic
from ftlab.runs.record import RunRecord

GROUP_COLUMNS = ("group", "method", "model", "dataset", "seeds", "trainable params", "val acc", "test acc",
                 "test F1", "95% CI", "95% CI (seeds+examples)", "min–max", "train time (s)", "peak memory (MB)",
                 "train samples/s", "Δ acc", "Δ 95% CI", "paired test", "p", "p (Holm)", "verdict",
                 "ASO ε_min (row≻ref / ref≻row)", "seeds needed", "notes")
RUN_COLUMNS = ("run", "group", "seed", "method", "model", "dataset", "trainable params", "val acc", "test acc",
               "test F1", "train time (s)", "peak memory (MB)", "train samples/s", "notes")
TEXT_COLUMNS = {"group", "run", "method", "model", "dataset", "paired test", "verdict", "notes", "task"}


def _for_task(columns: tuple[str, ...], task: tasks.Task) -> tuple[str, ...]:
    """A table's columns named after the task's metrics: "test acc" is "test MSE" for a regression."""
    names = {"acc": task.primary_label, "F1": task.secondary_label}
    return tuple(" ".join(names.get(word, word) if word in names and i else word
                          for i, word in enumerate(column.split(" "))) for column in columns)


def group_columns(task: tasks.Task) -> tuple[str, ...]:
    return _for_task(GROUP_COLUMNS, task)


def compact_columns(task: tasks.Task) -> tuple[str, ...]:
    return _for_task(COMPACT_COLUMNS, task)


def by_task(summaries: list[Summary]) -> list[tuple[tasks.Task, list[Summary]]]:
    """The summaries of each task present, tasks in order of first appearance: one table each."""
    found: dict[str, list[Summary]] = {}
    for summary in summaries:
        found.setdefault(summary.task.problem_type, []).append(summary)
    return [(tasks.get(problem_type), members) for problem_type, members in found.items()]


def method_label(record: RunRecord) -> str:
    """The method with the settings that tell its variants apart (LoRA rank and alpha, selective depth); the
    TF-IDF baseline by its record's name."""
    method, args = record.method, record.method_args
    if method not in methods.METHODS:
        return method
    label = methods.get(method).describe(args)
    if args.get("load_adapter") and not methods.get(method).adapter:
        label += " after an adapter"  # merged in first: the "LoRA, then the head" chain
    return label


def notes(record: RunRecord) -> list[str]:
    found = []
    if record.eval_only:
        found.append("eval only (not trained)")
    if record.collapse:
        found.append(f"**collapse: {record.collapse}**")
    if record.test_is_validation:
        found.append("test = validation")
    if record.search.get("state") == "PRUNED":
        found.append(f"pruned by the search at step {record.search['pruned_at_step']}")
    return found


def _number(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _mean(values: list[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _spread(values: list[float]) -> str:
    """mean ± sample sd over seeds; the value alone for one seed, and said so where all seeds scored the same."""
    if len(values) == 1:
        return format(values[0], ".4f")
    if len(set(values)) == 1:
        return f"{values[0]:.4f} ({len(values)} seeds equal)"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def _seeds_equal(summary: Summary) -> bool:
    return summary.n > 1 and len(set(summary.test_score)) == 1


def _seed_interval(summary: Summary) -> str:
    """The 95% CI column: a t-interval over seeds that all scored the same has no width, and says nothing about
    the spread a new seed would have; that is said instead of a zero-width interval."""
    return "seeds equal" if _seeds_equal(summary) else _interval(summary.interval)


def _p(value: float) -> str:
    return "<0.0001" if value < 0.0001 else format(value, ".4f")


def _interval(interval: Optional[tuple[float, float]], spec: str = ".4f") -> str:
    return "–" if interval is None else f"{interval[0]:{spec}}–{interval[1]:{spec}}"


def _aso_cell(outcome: Comparison) -> str:
    if outcome.aso is not None:
        return f"{outcome.aso[0]:.2f} / {outcome.aso[1]:.2f}"
    return f"needs ≥ {stats.ASO_MIN_SEEDS} seeds" if outcome.test == TWO_LEVEL else ""


def _seeds_needed_cell(outcome: Comparison) -> str:
    if not outcome.seeds_estimated:
        return ""
    return "more test examples" if outcome.seeds_needed is None else str(outcome.seeds_needed)


def _comparison_cells(outcome: Optional[Outcome]) -> list[str]:
    """Δ acc, Δ 95% CI, paired test, p, p (Holm), verdict, ASO, seeds needed."""
    if isinstance(outcome, Comparison):
        return [f"{outcome.difference:+.4f}", "" if outcome.interval is None else _interval(outcome.interval, "+.4f"),
                outcome.test, _p(outcome.p), _p(outcome.adjusted_p), outcome.verdict, _aso_cell(outcome),
                _seeds_needed_cell(outcome)]
    return ["", "", "", "", "", outcome or "", "", ""]


def group_row(summary: Summary, outcome: Optional[Outcome]) -> list[str]:
    records = summary.group.records
    first = records[0]
    return [summary.group.name, method_label(first), first.model, first.dataset,
            str(summary.n), f"{first.trainable_params:,}", _number(_mean(summary.validation_score), ".4f"),
            _spread(summary.test_score), _spread(summary.test_secondary), _seed_interval(summary),
            "" if summary.two_level_interval is None else _interval(summary.two_level_interval),
            "–" if summary.n == 1 else f"{min(summary.test_score):.4f}–{max(summary.test_score):.4f}",
            _number(_mean([r.train_seconds for r in records]), ".1f"),
            _number(_mean([r.peak_memory_mb for r in records]), ".0f"),
            _number(_mean([r.train_samples_per_second for r in records]), ".1f"),
            *_comparison_cells(outcome), group_notes(summary)]


def run_row(record: RunRecord, run: str, group: str) -> list[str]:
    return [run, group, str(record.seed), method_label(record), record.model, record.dataset,
            f"{record.trainable_params:,}", _number(record.score("validation"), ".4f"),
            _number(record.score("test"), ".4f"), _number(record.secondary("test"), ".4f"),
            _number(record.train_seconds, ".1f"), _number(record.peak_memory_mb, ".0f"),
            _number(record.train_samples_per_second, ".1f"), "; ".join(notes(record))]


def markdown_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if column in TEXT_COLUMNS else "---:" for column in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Report:
    """The analysis of a results directory's records: the groups summarised and compared with their reference."""
    records: list[RunRecord]
    summaries: list[Summary]
    outcomes: dict[str, Outcome]
    references: list[Summary]


def analyse(records: list[RunRecord], groups: list[Group], compare_to: Optional[str] = None) -> Report:
    """Summaries of the groups and the paired comparisons: with `compare_to` (a group's or run's name or id)
    against that group, else per dataset against the group with the best mean validation accuracy."""
    named = find_group(compare_to, groups) if compare_to is not None else None  # before any work
    summaries = [summarise(group) for group in groups]
    references = [s for s in summaries if s.group is named] if named is not None else \
        best_by_validation(summaries)
    outcomes: dict[str, Outcome] = {}
    for reference in references:
        # With one reference per dataset (and task), each is compared with its own dataset's groups only.
        peers = [s for s in summaries if compare_to is not None or s.source == reference.source]
        outcomes.update(compare(peers, reference))
    return Report(records, summaries, outcomes, references)


COMPACT_COLUMNS = ("group", "method", "runs", "test acc [95% CI]", "Δ acc", "p (Holm)", "verdict")


def _compact_accuracy(summary: Summary) -> str:
    mean = float(np.mean(summary.test_score))
    if _seeds_equal(summary):
        interval = summary.two_level_interval  # over test examples too: the one interval with a width here
        return f"{mean:.4f} " + ("(seeds equal)" if interval is None else
                                 f"[{interval[0]:.3f}, {interval[1]:.3f}] (seeds equal)")
    if summary.interval is None:
        return f"{mean:.4f}"
    return f"{mean:.4f} [{summary.interval[0]:.3f}, {summary.interval[1]:.3f}]"


def compact_row(summary: Summary, outcome: Optional[Outcome]) -> list[str]:
    """The terminal's row of a group: the columns one reads first, each short."""
    if isinstance(outcome, Comparison):
        comparison = [f"{outcome.difference:+.4f}", _p(outcome.adjusted_p), outcome.verdict]
    else:
        comparison = ["", "", "not comparable" if outcome == NOT_COMPARABLE else outcome or ""]
    return [summary.group.name, method_label(summary.group.records[0]), str(summary.n),
            _compact_accuracy(summary), *comparison]


def group_notes(summary: Summary) -> str:
    """What the notes column says of a group (a collapse, a pruned trial, missing predictions ...); "" for none."""
    found = dict.fromkeys(note for r in summary.group.records for note in notes(r))  # each note once
    return "; ".join([*found, *summary.notes])


def write_csv(path: Path, report: Report) -> Path:
    """The full group table as CSV (the markdown table's columns and cells), for spreadsheets and scripts; where
    the runs are of several tasks, the metric columns are named score (each row's task's primary metric) and a
    `task` column says which."""
    parts = by_task(report.summaries)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if len(parts) <= 1:
                writer.writerow(group_columns(parts[0][0]) if parts else GROUP_COLUMNS)
                writer.writerows(group_row(s, report.outcomes.get(s.group.id)) for s in report.summaries)
                return
            generic = tasks.Task("", "", "", "score", "", "second metric", "", (), False)
            writer.writerow(("task", *group_columns(generic)))
            writer.writerows((s.task.short, *group_row(s, report.outcomes.get(s.group.id))) for s in report.summaries)

    return write_atomic(path, write)


def render(report: Report, results_dir: Path, output_dir: Path, plots: list[Path], per_run: bool,
           left_out: Sequence[str] = ()) -> str:
    """The full markdown report (written to `output_dir`; its plot links are relative to it)."""
    summaries, outcomes, references, records = report.summaries, report.outcomes, report.references, report.records
    reference_names = ", ".join(f"{s.group.name} ({s.dataset})" for s in references)
    parts = [
        f"# Results: {results_dir}", "",
        *([f"Left out: {'; '.join(left_out)}.", ""] if left_out else []),
        f"{len(records)} runs in {len(summaries)} configuration groups (runs that differ only in seed). Accuracy "
        "and F1 on each run's own splits (see each record's `data`); F1 is binary for two classes, macro-averaged "
        "otherwise; `test acc` and `test F1` are mean ± sample standard deviation over seeds. A multi-label or "
        "regression table names its task's metrics instead (example-based F1 and macro-F1; MSE and Pearson's r), "
        "and its paired tests read each example's F1 or squared error (lower MSE is better). `95% CI` is the "
        "test accuracy's confidence interval: a t-interval over seeds for several seeds (the test set held "
        "fixed), a bootstrap over test examples for one run; `95% CI (seeds+examples)` the interval from resampling "
        "both seeds and test examples, shown where its width differs from the t-interval's by more than a third. "
        "Train time is wall-clock seconds of training only, peak memory CUDA peak "
        "allocated on GPUs, else the process's peak resident set (means over seeds).", "",
        f"Paired tests against the reference {reference_names} on the same test examples: McNemar's exact test "
        "when both sides have one run, else a bootstrap that resamples each group's seeds and the test examples "
        "(the same examples for both), so that the variance of a new seed counts; its percentile interval of "
        f"`Δ acc` is `Δ 95% CI`. p-values Holm-corrected over the rows compared with a reference; verdict at "
        f"α = {stats.ALPHA}, from that test (not from the groups' intervals). `Δ acc` is the row's test accuracy "
        f"minus the reference's. `ASO ε_min`: almost stochastic order over the seeds' accuracies (below 0.5, and "
        f"more surely below 0.2, the first distribution dominates), with {stats.ASO_MIN_SEEDS} seeds or more a "
        f"side. `seeds needed`: for a difference that is not significant, seeds per group to detect it at "
        f"α = {stats.ALPHA} with {stats.POWER:.0%} power if it is real (`more test examples` where no number "
        "of seeds would).", "",
        *_task_tables(summaries, outcomes)]
    if per_run:
        labels = run_labels(records)
        group_names = {r.output_dir: s.group.name for s in summaries for r in s.group.records}
        parts += ["## Runs", ""]
        for task, members in by_task(summaries):
            runs = [r for s in members for r in s.group.records]
            parts += [markdown_table(_for_task(RUN_COLUMNS, task),
                                     [run_row(r, labels[r.output_dir], group_names[r.output_dir]) for r in runs]), ""]
    # Links relative to the report, so the markdown renders wherever the two folders travel together.
    parts += [f"![{plot.stem}]({os.path.relpath(plot, output_dir)})" for plot in plots]
    return "\n".join(parts) + "\n"




def _task_tables(summaries: list[Summary], outcomes: dict[str, Outcome]) -> list[str]:
    """The group table, one per task: each with its task's metric in the columns (a heading where there are
    several)."""
    parts: list[str] = []
    split = by_task(summaries)
    for task, members in split:
        if len(split) > 1:
            parts += [f"## {task.short.capitalize()} ({task.primary_label}; per example: {task.per_example})", ""]
        parts += [markdown_table(group_columns(task), [group_row(s, outcomes.get(s.group.id)) for s in members]), ""]
    return parts
