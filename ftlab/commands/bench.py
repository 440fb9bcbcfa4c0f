"""`main.py bench --methods lora,full [train flags]`: the tutorials' reference recipe and this harness's default
(and compiled) recipe, side by side per method, each a real training run in its own process (ftlab.bench)."""
from __future__ import annotations

import time
from pathlib import Path

from ftlab.bench.recipes import BENCH_METHODS, COMPACT_COLUMNS, RECIPES, BenchArgs, plan
from ftlab.commands.job import Job
from ftlab import methods
from ftlab.config import OneLineParser, explicit_options
from ftlab.config.rules import check_flags_for_methods
from ftlab.console import render_table, say, short_path
from ftlab.errors import ConfigError
from ftlab.runs.directory import STUDIES_DIR, check_output_dir

NAME = "bench"
SUMMARY = "Training speed: the tutorials' recipe against this harness's default, per method."


def build_parser(prog: str = "main.py") -> OneLineParser:
    parser = OneLineParser(prog=f"{prog} {NAME}", allow_abbrev=False, description="Reference recipe vs this "
                           "harness's default, per method; any training flag (--model, --dataset, --max_length, ...) "
                           "applies to both.")
    parser.add_argument("--methods", default=methods.DEFAULT_METHOD, help=f"comma-separated, of "
                        f"{', '.join(BENCH_METHODS)} (default: {methods.DEFAULT_METHOD})")
    parser.add_argument("--recipes", default="reference,default", help=f"comma-separated, of {', '.join(RECIPES)} "
                        "(default: reference,default; reference is always run: the ratios need it)")
    parser.add_argument("--output_dir", "--bench_dir", dest="output_dir", help="where the runs, their logs, "
                        f"bench.json, bench.md and bench.csv go (default: {STUDIES_DIR}/bench-<time>)")
    return parser


def _comma_list(text: str, allowed: tuple[str, ...], flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in items if item not in allowed]
    if bad or not items:
        raise ConfigError(f"{flag} {text!r}: each item must be one of {', '.join(allowed)}")
    return items


def parse_bench_args(argv: list[str]) -> tuple[BenchArgs, list[str]]:
    known, rest = build_parser().parse_known_args(argv)
    chosen = _comma_list(known.methods, BENCH_METHODS, "--methods")
    check_flags_for_methods(chosen, explicit_options(rest), "bench")
    recipes = _comma_list(known.recipes, tuple(RECIPES), "--recipes")
    if "reference" not in recipes:
        recipes.insert(0, "reference")  # the ratios need it
    bench_dir = Path(known.output_dir or Path(STUDIES_DIR) / f"bench-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(bench_dir)
    return BenchArgs(chosen, recipes, bench_dir), rest


def prepare(argv: list[str]) -> Job:
    bench, train_argv = parse_bench_args(argv)
    plan(bench, train_argv, [])  # flags checked before torch is imported
    # This process only measures GEMMs; each run is a `main.py train` of its own, which sets itself up.
    return Job(run=lambda stop: run(bench, train_argv))


def run(bench: BenchArgs, train_argv: list[str]) -> int:
    import torch

    from ftlab.bench.recipes import RECIPES, device_sizes, format_table, rows_of, run_bench, write_csv
    from ftlab.models.flops import FlopsModel
    from ftlab.runs.directory import write_atomic, write_json_atomic

    cuda = torch.cuda.is_available()
    runs = plan(bench, train_argv, device_sizes(train_argv, cuda))
    bench.bench_dir.mkdir(parents=True, exist_ok=True)
    rows, gemm = run_bench(bench, runs, cuda)
    summary = {"bench_dir": str(bench.bench_dir), "argv": train_argv, "recipes": {r: RECIPES[r] for r in
               bench.recipes}, "flops_model": FlopsModel.__doc__.split("\n")[0] + " (see ftlab/models/flops.py)",
               "gemm": gemm, "rows": rows}
    table = format_table(rows)
    written = [write_json_atomic(bench.bench_dir / "bench.json", summary),
               write_atomic(bench.bench_dir / "bench.md", lambda tmp: tmp.write_text(table + "\n", encoding="utf-8")),
               write_csv(bench.bench_dir / "bench.csv", rows)]
    print(render_table(COMPACT_COLUMNS, rows_of(rows, COMPACT_COLUMNS),
                       right=COMPACT_COLUMNS[2:], wrap=("method", "recipe")))
    say(f"written: {', '.join(short_path(path) for path in written)} (every column: bench.md)", prefix="[bench]")
    return 1 if any("error" in row for row in rows) else 0
