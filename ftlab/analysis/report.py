"""`main.py report [RESULTS_DIR]`: every run record under a directory as markdown tables, plus plots.

One row per configuration group (the seeds of one configuration, ftlab.analysis.records), with its spread over seeds, a
95% confidence interval and a paired significance test against a reference group (ftlab.analysis.compare); `--per_run`
adds a row per run.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ftlab.analysis import stats
from ftlab.analysis.compare import (TWO_LEVEL, Comparison, Outcome, Summary, best_by_validation, compare, find_group,
                                    summarise)
from ftlab import methods
from ftlab.config import OneLineParser
from ftlab.errors import UserError
from ftlab.analysis.records import Record, group_records, load_records, method_of, model_of, run_labels, seed_of
from ftlab.runs.directory import INDEX_NAME, write_atomic

REPORT_NAME = "report.md"
GROUP_COLUMNS = ("group", "method", "model", "dataset", "seeds", "trainable params", "val acc", "test acc",
                 "test F1", "95% CI", "95% CI (seeds+examples)", "min–max", "train time (s)", "peak memory (MB)",
                 "train samples/s", "Δ acc", "Δ 95% CI", "paired test", "p", "p (Holm)", "verdict",
                 "ASO ε_min (row≻ref / ref≻row)", "seeds needed", "notes")
RUN_COLUMNS = ("run", "group", "seed", "method", "model", "dataset", "trainable params", "val acc", "test acc",
               "test F1", "train time (s)", "peak memory (MB)", "train samples/s", "notes")
TEXT_COLUMNS = {"group", "run", "method", "model", "dataset", "paired test", "verdict", "notes"}


def method_label(record: Record) -> str:
    """The method with the settings that tell its variants apart (LoRA rank and alpha, selective depth); the
    TF-IDF baseline by its record's name."""
    method, args = method_of(record), record["config"]["method"]
    if method not in methods.METHODS:
        return method
    label = methods.get(method).describe(args)
    if args.get("load_adapter") and not methods.get(method).adapter:
        label += " after an adapter"  # merged in first: the "LoRA, then the head" chain
    return label


def notes(record: Record) -> list[str]:
    found = []
    if record.get("eval_only"):
        found.append("eval only (not trained)")
    if record.get("collapse"):
        found.append(f"**collapse: {record['collapse']}**")
    if record.get("data", {}).get("test_is_validation"):
        found.append("test = validation")
    if (record.get("search") or {}).get("state") == "PRUNED":
        found.append(f"pruned by the search at step {record['search']['pruned_at_step']}")
    return found


def _number(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _mean(values: list[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _spread(values: list[float]) -> str:
    """mean ± sample sd over seeds; the value alone for one seed."""
    if len(values) == 1:
        return format(values[0], ".4f")
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


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
    group_notes = list(dict.fromkeys(note for r in records for note in notes(r)))  # each note once
    return [summary.group.name, method_label(first), model_of(first), first["config"]["data"]["dataset"],
            str(summary.n), f"{first['trainable_params']:,}", _number(_mean(summary.validation_accuracy), ".4f"),
            _spread(summary.test_accuracy), _spread(summary.test_f1), _interval(summary.interval),
            "" if summary.two_level_interval is None else _interval(summary.two_level_interval),
            "–" if summary.n == 1 else f"{min(summary.test_accuracy):.4f}–{max(summary.test_accuracy):.4f}",
            _number(_mean([r["train_seconds"] for r in records]), ".1f"),
            _number(_mean([r.get("peak_memory_mb") for r in records]), ".0f"),
            _number(_mean([r.get("train_samples_per_second") for r in records]), ".1f"),
            *_comparison_cells(outcome), "; ".join([*group_notes, *summary.notes])]


def run_row(record: Record, run: str, group: str) -> list[str]:
    metrics = record["metrics"]
    return [run, group, str(seed_of(record)), method_label(record), model_of(record),
            record["config"]["data"]["dataset"], f"{record['trainable_params']:,}",
            _number(metrics["validation"]["accuracy"], ".4f"), _number(metrics["test"]["accuracy"], ".4f"),
            _number(metrics["test"]["f1"], ".4f"), _number(record["train_seconds"], ".1f"),
            _number(record.get("peak_memory_mb"), ".0f"), _number(record.get("train_samples_per_second"), ".1f"),
            "; ".join(notes(record))]


def markdown_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" if column in TEXT_COLUMNS else "---:" for column in columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(summaries: list[Summary], outcomes: dict[str, Outcome], references: list[Summary], records: list[Record],
           results_dir: Path, plots: list[Path], per_run: bool) -> str:
    reference_names = ", ".join(f"{s.group.name} ({s.dataset})" for s in references)
    parts = [
        f"# Results: {results_dir}", "",
        f"{len(records)} runs in {len(summaries)} configuration groups (runs that differ only in seed). Accuracy "
        "and F1 on each run's own splits (see each record's `data`); F1 is binary for two classes, macro-averaged "
        "otherwise; `test acc` and `test F1` are mean ± sample standard deviation over seeds. `95% CI` is the "
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
        markdown_table(GROUP_COLUMNS, [group_row(s, outcomes.get(s.group.id)) for s in summaries]), ""]
    if per_run:
        labels = run_labels(records)
        group_names = {r["output_dir"]: s.group.name for s in summaries for r in s.group.records}
        parts += ["## Runs", "", markdown_table(RUN_COLUMNS, [run_row(r, labels[r["output_dir"]],
                                                                      group_names[r["output_dir"]])
                                                              for r in records]), ""]
    # Links relative to the report, so the markdown renders wherever the two folders travel together.
    parts += [f"![{plot.stem}]({os.path.relpath(plot, results_dir)})" for plot in plots]
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="main.py report", description="Tabulate, compare and plot every run record under "
                           "a directory.")
    parser.add_argument("results_dir", nargs="?", default="runs",
                        help="directory searched for index.jsonl and result.json files (default: runs)")
    parser.add_argument("--img_dir", default="img", help="where the PNG plots go (default: img)")
    parser.add_argument("--per_run", action="store_true", help="also list every run (every seed) in its own row")
    parser.add_argument("--compare_to", help="reference for the paired tests: a group's name or id, or a run's name "
                        "(its group) (default: per dataset, the group with the best mean validation accuracy)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise UserError(f"report: {results_dir} is not a directory")
    records = load_records(results_dir)
    if not records:
        raise UserError(f"report: no run records under {results_dir} (looked for {INDEX_NAME} and result.json)")
    groups = group_records(records)
    named = find_group(args.compare_to, groups) if args.compare_to is not None else None  # before any work
    summaries = [summarise(group) for group in groups]
    if named is not None:
        references = [s for s in summaries if s.group is named]
    else:
        references = list(best_by_validation(summaries).values())
    outcomes: dict[str, Outcome] = {}
    for reference in references:
        # With one reference per dataset, each is compared with its own dataset's groups only.
        peers = [s for s in summaries if args.compare_to is not None or s.dataset == reference.dataset]
        outcomes.update(compare(peers, reference))
    from ftlab.analysis.plots import plot_all  # matplotlib loads only now

    labels = run_labels(records)
    # Named after the results directory so that the plots of several sweeps can share img/.
    plots = plot_all(records, summaries, Path(args.img_dir), prefix=results_dir.resolve().name,
                     label=lambda record: labels[record["output_dir"]])
    text = render(summaries, outcomes, references, records, results_dir, plots, args.per_run)
    write_atomic(results_dir / REPORT_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text, end="")
    print(f"[ftlab] report: {results_dir / REPORT_NAME}; plots: {', '.join(str(p) for p in plots)}")
    return 0
