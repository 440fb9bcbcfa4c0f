"""`main.py report [RESULTS_DIR]`: every run record under a directory as one markdown table, plus plots.

Records come from each experiment's `index.jsonl` (one line per finished run) and from `result.json` files that
no index lists (runs copied in by hand). A run that appears twice (re-run with --overwrite_output_dir) counts
once, with its latest record: runs are identified by their `output_dir`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from ftlab.config import OneLineParser
from ftlab.errors import UserError
from ftlab.results import INDEX_NAME

REPORT_NAME = "report.md"
COLUMNS = ("run", "method", "model", "dataset", "trainable params", "val acc", "test acc", "test F1",
           "train time (s)", "peak memory (MB)", "train samples/s", "notes")


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """The latest record of every run under results_dir, in the table's order."""
    by_run: dict[str, dict[str, Any]] = {}
    for index in sorted(results_dir.rglob(INDEX_NAME)):
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # A line cut short by a killed job must not hide the rest of the sweep.
                print(f"[ftlab] report: skipping unreadable line {number} of {index}", file=sys.stderr)
                continue
            by_run[record["output_dir"]] = record
    for path in sorted(results_dir.rglob("result.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        by_run.setdefault(record["output_dir"], record)
    return sorted(by_run.values(), key=sort_key)


def method_of(record: dict[str, Any]) -> str:
    # Records written before the top-level "method"/"model" keys existed name them only in their config.
    return record.get("method") or record["config"]["method"]["method"]


def model_of(record: dict[str, Any]) -> str:
    return record.get("model") or record["config"]["model"]["model"]


def dataset_of(record: dict[str, Any]) -> str:
    return record["config"]["data"]["dataset"]


def run_labels(records: list[dict[str, Any]]) -> dict[str, str]:
    """output_dir -> the run's short name: its directory name, with the parent's where two runs share one."""
    names = [Path(r["output_dir"]).name for r in records]
    return {r["output_dir"]: name if names.count(name) == 1 else f"{Path(r['output_dir']).parent.name}/{name}"
            for r, name in zip(records, names)}


def sort_key(record: dict[str, Any]) -> tuple[str, str, str, str]:
    return dataset_of(record), model_of(record), method_of(record), record["output_dir"]


def method_label(record: dict[str, Any]) -> str:
    """The method with the settings that tell its variants apart (LoRA rank and alpha, selective depth)."""
    method, args = method_of(record), record["config"]["method"]
    if method in ("lora", "qlora", "scratch_lora"):
        label = f"{method} r={args['lora_r']} α={args['lora_alpha']:g}"
    elif method == "selective":
        label = f"selective ({args['unfreeze_layers']} blocks)"
    else:
        label = method
    if args.get("load_adapter") and method not in ("lora", "qlora"):
        label += " after LoRA"  # the adapter was merged in first: the LoRA -> head chain
    return label


def notes(record: dict[str, Any]) -> str:
    found = []
    if record.get("eval_only"):
        found.append("eval only (not trained)")
    if record.get("collapse"):
        found.append(f"**collapse: {record['collapse']}**")
    if record.get("data", {}).get("test_is_validation"):
        found.append("test = validation")
    if (record.get("search") or {}).get("state") == "PRUNED":
        found.append(f"pruned by the search at step {record['search']['pruned_at_step']}")
    return "; ".join(found)


def _number(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def table_row(record: dict[str, Any], run: str) -> list[str]:
    metrics = record["metrics"]
    return [run, method_label(record), model_of(record), dataset_of(record),
            f"{record['trainable_params']:,}", _number(metrics["validation"]["accuracy"], ".4f"),
            _number(metrics["test"]["accuracy"], ".4f"), _number(metrics["test"]["f1"], ".4f"),
            _number(record["train_seconds"], ".1f"), _number(record.get("peak_memory_mb"), ".0f"),
            _number(record.get("train_samples_per_second"), ".1f"), notes(record)]


def markdown_table(records: list[dict[str, Any]], labels: dict[str, str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" if column in ("run", "method", "model", "dataset", "notes") else "---:"
                            for column in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in table_row(r, labels[r["output_dir"]])) + " |"
              for r in records]
    return "\n".join(lines)


def render(records: list[dict[str, Any]], labels: dict[str, str], results_dir: Path, plots: list[Path]) -> str:
    parts = [f"# Results: {results_dir}", "",
             f"{len(records)} runs. Accuracy and F1 on each run's own splits (see each record's `data`); F1 is binary "
             "for two classes, macro-averaged otherwise. Train time is wall-clock seconds of training only; peak "
             "memory is CUDA peak allocated on GPUs, else the process's peak resident set.", "",
             markdown_table(records, labels), ""]
    # Links relative to the report, so the markdown renders wherever the two folders travel together.
    parts += [f"![{plot.stem}]({os.path.relpath(plot, results_dir)})" for plot in plots]
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="main.py report", description="Tabulate and plot every run record under a directory.")
    parser.add_argument("results_dir", nargs="?", default="runs",
                        help="directory searched for index.jsonl and result.json files (default: runs)")
    parser.add_argument("--img_dir", default="img", help="where the PNG plots go (default: img)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise UserError(f"report: {results_dir} is not a directory")
    records = load_records(results_dir)
    if not records:
        raise UserError(f"report: no run records under {results_dir} (looked for {INDEX_NAME} and result.json)")
    from ftlab.plots import plot_all

    # Named after the results directory so that the plots of several sweeps can share img/.
    labels = run_labels(records)
    plots = plot_all(records, Path(args.img_dir), prefix=results_dir.resolve().name,
                     label=lambda record: labels[record["output_dir"]])
    text = render(records, labels, results_dir, plots)
    (results_dir / REPORT_NAME).write_text(text, encoding="utf-8")
    print(text, end="")
    print(f"[ftlab] report: {results_dir / REPORT_NAME}; plots: {', '.join(str(p) for p in plots)}")
    return 0
