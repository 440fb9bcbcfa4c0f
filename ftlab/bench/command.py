"""`main.py bench`: the standard tutorial recipe and this project's default recipe, side by side, per method.

Every measurement is a real training run through `main.py train` in its own process (so peak memory, compile
caches and CUDA state never leak from one recipe into the next); this module picks the flags, reads the run
records back, and puts them in one table and one JSON file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ftlab import methods
from ftlab.config import OneLineParser, explicit_options
from ftlab.config.rules import check_flags_for_methods
from ftlab.errors import ConfigError
from ftlab.models.flops import FlopsModel, flops_model, training_flops
from ftlab.runs.directory import write_atomic, write_json_atomic
from ftlab.runs.plan import plan_run

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
# Unless the user says otherwise: the issue's setup (IMDB reviews up to 512 tokens), sized for the device.
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


def _comma_list(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in allowed]
    if bad or not items:
        raise ConfigError(f"{flag} {text!r}: each item must be one of {', '.join(allowed)}")
    return items


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="main.py bench", description="Reference recipe vs this harness's default, per "
                           "method; any training flag (--model, --dataset, --max_length, ...) applies to both.")
    parser.add_argument("--methods", default=methods.DEFAULT_METHOD, help=f"comma-separated, of {', '.join(BENCH_METHODS)}")
    parser.add_argument("--recipes", default="reference,default", help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--bench_dir", default=None, help="where runs, logs and bench.json go "
                        "(default runs/bench-<time>)")
    return parser


def parse_bench_args(argv: list[str]) -> tuple[BenchArgs, list[str]]:
    known, rest = build_parser().parse_known_args(argv)
    chosen = _comma_list(known.methods, BENCH_METHODS, "--methods")
    check_flags_for_methods(chosen, explicit_options(rest), "bench")
    recipes = _comma_list(known.recipes, tuple(RECIPES), "--recipes")
    if "reference" not in recipes:
        recipes.insert(0, "reference")  # the ratios need it
    bench_dir = Path(known.bench_dir or Path("runs") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}")
    return BenchArgs(chosen, recipes, bench_dir), rest


def plan(bench: BenchArgs, train_argv: list[str], sizes: list[str]) -> list[tuple[str, str, list[str]]]:
    """(method, recipe, full argv) per run, each validated now so a bad flag costs a second, not a benchmark."""
    runs = []
    for method in bench.methods:
        for recipe in bench.recipes:
            argv = [*sizes, *train_argv, *RECIPES[recipe], "--method", method,
                    "--output_dir", str(bench.bench_dir / f"{method}-{recipe}"), "--wandb_mode", "disabled"]
            if plan_run(argv, foreign_flags="ignore").run.seeds:
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


def useful_flops_per_second(record: dict[str, Any], samples_per_second: float) -> Optional[float]:
    """FLOP/s of useful work: the FLOPs model over the real tokens only (padding a recipe computes is waste),
    times the passes its method needs; None for a family the FLOPs model does not cover."""
    return training_flops(record["config"]["method"]["method"], flops_model(record["model_source"]["location"]),
                          record["mean_train_tokens"], samples_per_second)


def bench_row(record: dict[str, Any], reference: Optional[dict[str, Any]],
              gemm_rates: Optional[dict[str, float]] = None) -> dict[str, Any]:
    """One table row. `gemm_rates` (precision -> FLOP/s measured on this CPU) gives the CPU utilisation: useful
    FLOP/s over the GEMM rate of the precision the recipe trained in."""
    samples_per_second = record["steady_samples_per_second"] or record["train_samples_per_second"]
    device = record["environment"]["device"]
    useful = useful_flops_per_second(record, samples_per_second)
    peak = peak_flops(device)
    rate = (gemm_rates or {}).get(record.get("precision") or "fp32")
    row = {
        "method": record["config"]["method"]["method"],
        "samples_per_second": samples_per_second,
        "tokens_per_second": samples_per_second * record["mean_train_tokens"],
        "step_ms": 1000 * record["steady_step_seconds"] if record["steady_step_seconds"] else None,
        "useful_flops_per_second": useful,
        "mfu": useful / peak if peak and useful is not None else None,
        "cpu_utilisation": useful / rate if rate and not peak and useful is not None else None,
        "peak_memory_mb": record["peak_memory_mb"],
        "eval_samples_per_second": record["metrics"]["validation"]["samples_per_second"],
        "test_accuracy": record["metrics"]["test"]["accuracy"],
        "precision": record.get("precision"),
        "attention_dropout": record.get("attention_dropout"),
        "device": device,
        "output_dir": record["output_dir"],
    }
    if reference:
        ref_speed = reference["steady_samples_per_second"] or reference["train_samples_per_second"]
        row["speedup"] = samples_per_second / ref_speed
        row["accuracy_delta_points"] = 100 * (row["test_accuracy"] - reference["metrics"]["test"]["accuracy"])
        row["memory_ratio"] = record["peak_memory_mb"] / reference["peak_memory_mb"]
    return row


def cpu_gemm_rates(record: dict[str, Any], rows: int) -> dict[str, float]:
    """This CPU's GEMM rate on the model's block shapes (ftlab.bench.gemm_rate), in fp32 and, where the CPU has bf16
    units, in bf16."""
    import torch

    from ftlab.bench.gemm_rate import block_gemm_shapes, measure_gemm_rate
    from ftlab.training.speed import cpu_has_bf16

    hidden, ffn = model_dims(record["model_source"]["location"])
    shapes = block_gemm_shapes(hidden, ffn, rows)
    rates = {"fp32": measure_gemm_rate(shapes, torch.float32)}
    if cpu_has_bf16():
        rates["bf16"] = measure_gemm_rate(shapes, torch.bfloat16)
    return rates


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    def percent(value: Optional[float]) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    lines = ["| method | recipe | precision | samples/s | real tokens/s | step ms | useful GFLOP/s | MFU (GPU) "
             "| GEMM util (CPU) | peak MB | eval samples/s | test acc | speed vs ref | acc Δ (points) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['method']} | {row['recipe']} | failed: {row['error']} |" + " |" * 11)
            continue
        lines.append(
            f"| {row['method']} | {row['recipe']} | {row['precision']} | {cell(row['samples_per_second'], '.1f')} "
            f"| {cell(row['tokens_per_second'], ',.0f')} | {cell(row['step_ms'], '.1f')} "
            f"| {cell(row['useful_flops_per_second'] and row['useful_flops_per_second'] / 1e9, ',.1f')} "
            f"| {percent(row['mfu'])} "
            f"| {percent(row['cpu_utilisation'])} "
            f"| {cell(row['peak_memory_mb'], ',.0f')} | {cell(row['eval_samples_per_second'], '.1f')} "
            f"| {cell(row['test_accuracy'], '.4f')} | {cell(row.get('speedup'), '.2f')}x "
            f"| {cell(row.get('accuracy_delta_points'), '+.1f')} |")
    return "\n".join(lines)


def _run(argv: list[str], log: Path) -> Optional[str]:
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


def main(argv: list[str]) -> int:
    bench, train_argv = parse_bench_args(argv)
    plan(bench, train_argv, [])  # flags checked before torch is imported
    from ftlab.runtime import quiet_library_noise

    quiet_library_noise()  # this process only measures GEMMs; each run quiets its own libraries
    import torch

    runs = plan(bench, train_argv, device_sizes(train_argv, torch.cuda.is_available()))
    bench.bench_dir.mkdir(parents=True, exist_ok=True)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    errors: dict[tuple[str, str], str] = {}
    for method, recipe, run_argv in runs:
        out = bench.bench_dir / f"{method}-{recipe}"
        print(f"[bench] {method} / {recipe}: running (log {out}.log)", flush=True)
        error = _run(run_argv, Path(f"{out}.log"))
        if error:
            print(f"[bench] {method} / {recipe}: failed: {error}", flush=True)
            errors[method, recipe] = error
            continue
        records[method, recipe] = json.loads((out / "result.json").read_text(encoding="utf-8"))
    gemm = None
    if records and not torch.cuda.is_available():
        # Measured after the runs, on the otherwise idle machine; rows = the largest batch a recipe multiplies.
        first = next(iter(records.values()))
        rows = first["config"]["optim"]["batch_size"] * first["config"]["data"]["max_length"]
        gemm = {"rows": rows, "rates": cpu_gemm_rates(first, rows)}
        print("[bench] GEMM rate on the model's block shapes (" + f"{rows} rows): " +
              ", ".join(f"{p} {r / 1e9:,.0f} GFLOP/s" for p, r in gemm["rates"].items()), flush=True)
    rows_out = []
    for method, recipe, _ in runs:
        if (method, recipe) in errors:
            rows_out.append({"method": method, "recipe": recipe, "error": errors[method, recipe]})
            continue
        rows_out.append({"recipe": recipe, **bench_row(records[method, recipe], records.get((method, "reference")),
                                                         gemm and gemm["rates"])})
    table = format_table(rows_out)
    summary = {"bench_dir": str(bench.bench_dir), "argv": train_argv, "recipes": {r: RECIPES[r] for r in
               bench.recipes}, "flops_model": FlopsModel.__doc__.split("\n")[0] + " (see ftlab/models/flops.py)",
               "gemm": gemm, "rows": rows_out}
    write_json_atomic(bench.bench_dir / "bench.json", summary)
    write_atomic(bench.bench_dir / "bench.md", lambda tmp: tmp.write_text(table + "\n", encoding="utf-8"))
    print(table)
    print(f"[bench] written: {bench.bench_dir / 'bench.json'}, {bench.bench_dir / 'bench.md'}")
    return 1 if errors else 0
