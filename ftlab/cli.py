"""Command line: `main.py [train] [flags]`, `main.py baseline [flags]`, `main.py predict ...`,
`main.py report [DIR]`, `main.py bench ...`, `main.py search ...`, `main.py curve ...`; each subcommand is one
entry of COMMANDS."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from ftlab import exit_codes
from ftlab.errors import ConfigError, UserError

if TYPE_CHECKING:
    from ftlab.config import Config

# The seed projects ran the baseline with a flag; `main.py --check_baseline [flags]` = `main.py baseline [flags]`.
BASELINE_ALIASES = ("--check_baseline", "--check_baseLine")


def _run_config(argv: list[str]) -> "Config":
    """The validated run config. Offline switches are set before heavy imports."""
    from ftlab.runs.plan import plan_run

    cfg = plan_run(argv)
    from ftlab.runtime import quiet_library_noise

    from ftlab import methods

    # Before the libraries load: some read their switches on import.
    quiet_library_noise(methods.get(cfg.method.method).four_bit_base)
    from ftlab.hub import enter_offline_mode_if_unreachable

    enter_offline_mode_if_unreachable()  # before transformers/datasets read their offline switches
    return cfg


def _train(argv: list[str]) -> int:
    cfg = _run_config(argv)
    from ftlab.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    from ftlab.runs.preemption import TrainingInterrupted, stop_on_signals
    from ftlab.runs.directory import resolve_output_dir
    from ftlab.runs.plan import expand_seeds
    from ftlab.training.run import run_training

    if cfg.run.seeds:
        resolve_output_dir(cfg)  # one default name for all seeds: <output_dir>/seed<N>
    try:
        with stop_on_signals():
            # One seed after the other, in this process: each is a normal run with its own directory and record.
            for run in expand_seeds(cfg):
                if run.run.resume and (Path(run.run.output_dir or "") / "result.json").is_file():
                    print(f"[ftlab] {run.run.output_dir}: finished before (result.json), skipped", flush=True)
                    continue
                run_training(run)
    except TrainingInterrupted as exc:
        if exc.main_process:
            print(f"[ftlab] interrupted: {exc}; continue with the same flags and --resume auto --output_dir "
                  f"{cfg.run.output_dir} (exit code {exit_codes.INTERRUPTED})", file=sys.stderr, flush=True)
        return exit_codes.INTERRUPTED
    return 0


def _baseline(argv: list[str]) -> int:
    cfg = _run_config(argv)
    if cfg.run.seeds:
        raise ConfigError(f"--seeds {','.join(map(str, cfg.run.seeds))}: the baseline is deterministic (no training "
                          f"seed); it runs once, without --seeds")
    from ftlab.training.baseline import run_baseline  # sklearn and datasets load only now

    run_baseline(cfg)
    return 0


def _predict(argv: list[str]) -> int:
    from ftlab.predict import main as predict_main  # imports peft only when asked to predict

    return predict_main(argv)


def _bench(argv: list[str]) -> int:
    from ftlab.bench.command import main as bench_main

    return bench_main(argv)


def _search(argv: list[str]) -> int:
    from ftlab.search.command import main as search_main  # optuna and torch load only after the flags are checked

    return search_main(argv)


def _curve(argv: list[str]) -> int:
    from ftlab.curve.command import main as curve_main  # torch and datasets load only after the flags are checked

    return curve_main(argv)


def _report(argv: list[str]) -> int:
    from ftlab.analysis.report import main as report_main  # matplotlib loads only when plotting

    return report_main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": _train, "baseline": _baseline, "predict": _predict,
                                                   "report": _report, "bench": _bench, "search": _search,
                                                   "curve": _curve}
# Where each command's parser is built: `-h/--help` is answered here, for every command, before any of its flags is
# checked (argparse would stop at a bad flag before it reaches --help) and before anything heavy loads.
HELP_PARSERS = {"train": ("ftlab.config", "build_parser"), "baseline": ("ftlab.config", "build_parser"),
                "predict": ("ftlab.predict", "build_parser"), "report": ("ftlab.analysis.report", "build_parser"),
                "bench": ("ftlab.bench.command", "build_parser"), "search": ("ftlab.search.args", "build_parser"),
                "curve": ("ftlab.curve.args", "build_parser")}


def print_help(command: str) -> int:
    import importlib

    module, function = HELP_PARSERS[command]
    getattr(importlib.import_module(module), function)().print_help()
    return 0


def split_baseline_flag(argv: list[str]) -> tuple[Optional[bool], list[str]]:
    """Whether `--check_baseline` (optionally with a value: `--check_baseLine True`, `--check_baseline=false`) asks
    for the baseline (None when absent), and the arguments without it."""
    from ftlab.config import OPTIONAL_BOOL

    wanted: Optional[bool] = None
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        name, has_value, value = arg.partition("=")
        if name not in BASELINE_ALIASES:
            rest.append(arg)
            continue
        if not has_value:
            # `train` has no positional arguments, so a word after the flag can only be its value.
            following = next(args, None)
            if following is not None and following.startswith("-"):
                rest.append(following)
            elif following is not None:
                has_value, value = "=", following
        try:
            wanted = OPTIONAL_BOOL(value) if has_value else True
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"argument {name}: {exc}") from None
    return wanted, rest


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    try:
        if command == "train":
            baseline, argv = split_baseline_flag(argv)
            command = "baseline" if baseline else command
        if any(arg in ("-h", "--help") for arg in argv):
            return print_help(command)
        return COMMANDS[command](argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.BAD_INPUT
    except KeyboardInterrupt:
        print("[ftlab] aborted (Ctrl-C): a checkpoint being written is incomplete and ignored when resuming",
              file=sys.stderr, flush=True)
        return exit_codes.ABORTED
