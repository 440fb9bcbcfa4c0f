"""The recipes `main.py bench` (ftlab.commands.bench) sets side by side, per method: the standard tutorial recipe
and this project's default one.

Every measurement is a real training run through `main.py train` in its own process (so peak memory, compile
caches and CUDA state never leak from one recipe into the next); this module picks the flags, runs them, reads the
run records back, and puts them in tables (full: markdown and CSV files; compact: the terminal).
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ftlab import methods
from ftlab.config import flags_for_method
from ftlab.errors import ConfigError
from ftlab.models.flops import flops_model, training_flops
from ftlab.runs.directory import write_atomic
from ftlab.runs.plan import plan_run
from ftlab.runs.record import RESULT_NAME, RunRecord

BENCH_METHODS = methods.names()
# Flags appended after the user's, so they win. "reference" is the recipe of the HF/PEFT tutorials (what it gave
# on a GPU: docs/studies/speed.md, "Anchors on a GPU"), with the checkpoints' own attention
# and hidden dropout (0.1 in every supported encoder), which the CPU default turns off; "default" is this harness
# as shipped.
RECIPES: dict[str, list[str]] = {
    "reference": ["--pad_to_max_length", "--precision", "fp32", "--group_by_length", "false", "--batch_size", "16",
                  "--eval_batch_size", "16", "--dataloader_num_workers", "0", "--lora_dropout", "0.1",
                  "--attention_dropout", "0.1", "--hidden_dropout", "0.1", "--torch_compile", "false"],
    "default": [],
    "compiled": ["--torch_compile"],
}
# Unless the user says otherwise: the setup (IMDB reviews up to 512 tokens), sized for the device.
SIZES = {
    "cuda": ["--max_length", "512", "--max_train_samples", "8000", "--max_eval_samples", "1000",
             "--max_test_samples", "1000", "--epochs", "1"],
    "cpu": ["--max_length", "512", "--max_train_samples", "256", "--max_eval_samples", "128",
            "--max_test_samples", "256", "--epochs", "1"],
}
# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, most specific first.
PEAK_BF16_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("GH200", 989e12),
                   ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12), ("4090", 165e12))


@dataclass
class BenchArgs:
    methods: list[str]
    recipes: list[str]
    bench_dir: Path


def plan(bench: BenchArgs, train_argv: list[str], sizes: list[str]) -> list[tuple[str, str, list[str]]]:
    """(method, recipe, full argv) per run, each validated now so a bad flag costs a second, not a benchmark."""
    runs = []
    for method in bench.methods:
        for recipe in bench.recipes:
            # Each run gets the flags its method reads (the reference recipe's LoRA dropout is LoRA's).
            argv = [*flags_for_method([*sizes, *train_argv, *RECIPES[recipe]], method), "--method", method,
                    "--output_dir", str(bench.bench_dir / f"{method}-{recipe}"), "--wandb_mode", "disabled"]
            if plan_run(argv).run.seeds:
                raise ConfigError("bench: --seeds is not for benchmarks (one timed run per method and recipe)")
            runs.append((method, recipe, argv))
    return runs


def _given(flag: str, argv: list[str]) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def device_sizes(train_argv: list[str], cuda: bool) -> list[str]:
    """The size defaults for this device, minus those the user set."""
    defaults = SIZES["cuda" if cuda else "cpu"]
    pairs = zip(defaults[::2], defaults[1::2])
    return [item for flag, value in pairs if not _given(flag, train_argv) for item in (flag, value)]


def model_dims(location: str) -> tuple[int, int]:
    """(hidden, ffn) for the GEMM-rate shapes (ftlab.gemm_rate)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location)
    # DistilBERT calls the MLP width hidden_dim, GPT-2 n_inner (None: 4 x hidden).
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None) \
        or getattr(config, "n_inner", None) or 4 * config.hidden_size
    return config.hidden_size, ffn


def peak_flops(device: str) -> Optional[float]:
    return next((flops for fragment, flops in PEAK_BF16_FLOPS if fragment in device), None)


def useful_flops_per_second(record: RunRecord, samples_per_second: float) -> Optional[float]:
    """FLOP/s of useful work: the FLOPs model over the real tokens only (padding a recipe computes is waste),
    times the passes its method needs; None for a family the FLOPs model does not cover."""
    return training_flops(record.method, flops_model(record.model_location), record.mean_train_tokens,
                          samples_per_second)


def _speed(record: RunRecord) -> float:
    return record.steady_samples_per_second or record.train_samples_per_second


def bench_row(record: RunRecord, reference: Optional[RunRecord],
              gemm_rates: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """One table row. `gemm_rates` (precision -> FLOP/s measured on this CPU) gives the CPU utilisation: useful
    FLOP/s over the GEMM rate of the precision the recipe trained in."""
    samples_per_second = _speed(record)
    useful = useful_flops_per_second(record, samples_per_second)
    peak = peak_flops(record.device)
    rate = (gemm_rates or {}).get(record.precision or "fp32")
    row = {
        "method": record.method,
        "samples_per_second": samples_per_second,
        "tokens_per_second": samples_per_second * record.mean_train_tokens,
        "step_ms": 1000 * record.steady_step_seconds if record.steady_step_seconds else None,
        "useful_flops_per_second": useful,
        "mfu": useful / peak if peak and useful is not None else None,
        "cpu_utilisation": useful / rate if rate and not peak and useful is not None else None,
        "peak_memory_mb": record.peak_memory_mb,
        "eval_samples_per_second": record.metrics("validation")["samples_per_second"],
        "test_accuracy": record.accuracy("test"),
        "precision": record.precision,
        "attention_dropout": record.data.get("attention_dropout"),
        "device": record.device,
        "output_dir": record.output_dir,
    }
    if reference:
        row["speedup"] = samples_per_second / _speed(reference)
        row["accuracy_delta_points"] = 100 * (row["test_accuracy"] - reference.accuracy("test"))
        row["memory_ratio"] = record.peak_memory_mb / reference.peak_memory_mb
    return row


def cpu_gemm_rates(record: RunRecord, rows: int) -> dict[str, float]:
    """This CPU's GEMM rate on the model's block shapes (ftlab.bench.gemm_rate), in fp32 and, where the CPU has bf16
    units, in bf16."""
    import torch

    from ftlab.bench.gemm_rate import block_gemm_shapes, measure_gemm_rate
    from ftlab.training.speed import cpu_has_bf16

    hidden, ffn = model_dims(record.model_location)
    shapes = block_gemm_shapes(hidden, ffn, rows)
    rates = {"fp32": measure_gemm_rate(shapes, torch.float32)}
    if cpu_has_bf16():
        rates["bf16"] = measure_gemm_rate(shapes, torch.bfloat16)
    return rates


# The full table (bench.md, bench.csv): every figure of a row.
COLUMNS = ("method", "recipe", "precision", "samples/s", "real tokens/s", "step ms", "useful GFLOP/s", "MFU (GPU)",
           "GEMM util (CPU)", "peak MB", "eval samples/s", "test acc", "speed vs ref", "acc Δ (points)")
# The terminal's: what a comparison of recipes is read for.
COMPACT_COLUMNS = ("method", "recipe", "samples/s", "speed vs ref", "peak MB", "test acc", "acc Δ (points)")


def _cell(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _percent(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def table_cells(row: dict[str, Any]) -> dict[str, str]:
    """A row's cells by column name; a failed run says so in its third cell."""
    if "error" in row:
        return {"method": row["method"], "recipe": row["recipe"], "precision": f"failed: {row['error']}",
                "samples/s": "failed"}
    return {
        "method": row["method"], "recipe": row["recipe"], "precision": str(row["precision"]),
        "samples/s": _cell(row["samples_per_second"], ".1f"), "real tokens/s": _cell(row["tokens_per_second"], ",.0f"),
        "step ms": _cell(row["step_ms"], ".1f"),
        "useful GFLOP/s": _cell(row["useful_flops_per_second"] and row["useful_flops_per_second"] / 1e9, ",.1f"), "MFU (GPU)": _percent(row["mfu"]),
        "GEMM util (CPU)": _percent(row["cpu_utilisation"]), "peak MB": _cell(row["peak_memory_mb"], ",.0f"),
        "eval samples/s": _cell(row["eval_samples_per_second"], ".1f"),
        "test acc": _cell(row["test_accuracy"], ".4f"), "speed vs ref": f"{_cell(row.get('speedup'), '.2f')}x",
        "acc Δ (points)": _cell(row.get("accuracy_delta_points"), "+.1f"),
    }


def rows_of(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[list[str]]:
    cells = [table_cells(row) for row in rows]
    return [[cell.get(column, "") for column in columns] for cell in cells]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The full table as markdown."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---|" + "---:|" * (len(COLUMNS) - 3)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows_of(rows, COLUMNS)]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(rows_of(rows, COLUMNS))

    return write_atomic(path, write)


def run_recipe(argv: list[str], log: Path) -> Optional[str]:
    """One training run in a fresh interpreter; the error's last line if it failed."""
    # The child must import this same ftlab, also from a checkout that is not pip-installed and another cwd.
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    with open(log, "w", encoding="utf-8") as handle:
        proc = subprocess.run([sys.executable, "-m", "ftlab", "train", *argv], stdout=handle,
                              stderr=subprocess.STDOUT, env=env)
    if proc.returncode == 0:
        return None
    tail = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return (tail[-1] if tail else f"exit {proc.returncode}")[:200]


def run_bench(bench: BenchArgs, runs: list[tuple[str, str, list[str]]],
              cuda: bool) -> tuple[list[dict[str, Any]], Optional[dict[str, Any]]]:
    """Every (method, recipe) run in its own process, then, on a CPU, this CPU's GEMM rate: the table's rows (one
    per run, failed ones with their error) and the GEMM measurement."""
    from ftlab.console import say, short_path

    records: dict[tuple[str, str], RunRecord] = {}
    errors: dict[tuple[str, str], str] = {}
    for method, recipe, run_argv in runs:
        out = bench.bench_dir / f"{method}-{recipe}"
        say(f"{method} / {recipe}: running (log {short_path(f'{out}.log')})", prefix="[bench]")
        error = run_recipe(run_argv, Path(f"{out}.log"))
        if error:
            say(f"{method} / {recipe}: failed: {error}", prefix="[bench]")
            errors[method, recipe] = error
            continue
        records[method, recipe] = RunRecord.load(out / RESULT_NAME)
    gemm = None
    if records and not cuda:
        # Measured after the runs, on the otherwise idle machine; rows = the largest batch a recipe multiplies.
        first = next(iter(records.values()))
        rows = first.option("optim", "batch_size") * first.option("data", "max_length")
        gemm = {"rows": rows, "rates": cpu_gemm_rates(first, rows)}
        say(f"GEMM rate on the model's block shapes ({rows} rows): " +
            ", ".join(f"{p} {r / 1e9:,.0f} GFLOP/s" for p, r in gemm["rates"].items()), prefix="[bench]")
    table = []
    for method, recipe, _ in runs:
        if (method, recipe) in errors:
            table.append({"method": method, "recipe": recipe, "error": errors[method, recipe]})
            continue
        table.append({"recipe": recipe, **bench_row(records[method, recipe], records.get((method, "reference")),
                                                    gemm and gemm["rates"])})
    return table, gemm
