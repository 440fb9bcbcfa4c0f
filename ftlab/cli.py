"""Command line: `main.py [train] [flags]`, `main.py baseline [flags]`, `main.py predict ...`,
`main.py report [DIR]`, `main.py bench ...`, `main.py search ...`; each subcommand is one entry of COMMANDS."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Callable, Optional

from ftlab.errors import ConfigError, UserError

if TYPE_CHECKING:
    from ftlab.config import Config

# The seed projects ran the baseline with a flag; `main.py --check_baseline [flags]` = `main.py baseline [flags]`.
BASELINE_ALIASES = ("--check_baseline", "--check_baseLine")


def _run_config(argv: list[str]) -> Optional["Config"]:
    """The validated run config, or None after printing --help. Offline switches are set before heavy imports."""
    from ftlab.config import build_parser, parse_args

    if any(arg in ("-h", "--help") for arg in argv):
        build_parser().print_help()
        return None
    cfg = parse_args(argv)
    from ftlab.hub import enter_offline_mode_if_unreachable

    enter_offline_mode_if_unreachable()  # before transformers/datasets read their offline switches
    return cfg


def _train(argv: list[str]) -> int:
    cfg = _run_config(argv)
    if cfg is None:
        return 0
    from ftlab.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    from ftlab.config import expand_seeds
    from ftlab.rundir import resolve_output_dir
    from ftlab.run import run_training

    if cfg.run.seeds:
        resolve_output_dir(cfg)  # one default name for all seeds: <output_dir>/seed<N>
    # One seed after the other, in this process: each is a normal run with its own directory and record.
    for run in expand_seeds(cfg):
        run_training(run)
    return 0


def _baseline(argv: list[str]) -> int:
    cfg = _run_config(argv)
    if cfg is None:
        return 0
    if cfg.run.seeds:
        raise ConfigError(f"--seeds {','.join(map(str, cfg.run.seeds))}: the baseline is deterministic (no training "
                          f"seed); it runs once, without --seeds")
    from ftlab.baseline import run_baseline  # sklearn and datasets load only now

    run_baseline(cfg)
    return 0


def _predict(argv: list[str]) -> int:
    from ftlab.predict import main as predict_main  # imports peft only when asked to predict

    return predict_main(argv)


def _bench(argv: list[str]) -> int:
    from ftlab.bench import main as bench_main

    return bench_main(argv)


def _search(argv: list[str]) -> int:
    from ftlab.search import main as search_main  # optuna and torch load only after the flags are checked

    return search_main(argv)


def _report(argv: list[str]) -> int:
    from ftlab.report import main as report_main  # matplotlib loads only when plotting

    return report_main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": _train, "baseline": _baseline, "predict": _predict,
                                                   "report": _report, "bench": _bench, "search": _search}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    if command == "train" and any(arg in BASELINE_ALIASES for arg in argv):
        command = "baseline"
        argv = [arg for arg in argv if arg not in BASELINE_ALIASES]
    try:
        return COMMANDS[command](argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
