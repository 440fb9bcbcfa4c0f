"""Command line: `main.py [train] [flags]` and `main.py predict ...`; each subcommand is one entry of COMMANDS."""
from __future__ import annotations

import sys
from typing import Callable, Optional

from ftlab.errors import UserError


def _train(argv: list[str]) -> int:
    from ftlab.config import build_parser, parse_args

    if any(arg in ("-h", "--help") for arg in argv):
        build_parser().print_help()
        return 0
    cfg = parse_args(argv)
    from ftlab.hub import enter_offline_mode_if_unreachable
    from ftlab.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    enter_offline_mode_if_unreachable()  # before transformers/datasets read their offline switches
    from ftlab.run import run_training

    run_training(cfg)
    return 0


def _predict(argv: list[str]) -> int:
    from ftlab.predict import main as predict_main  # imports peft only when asked to predict

    return predict_main(argv)


def _bench(argv: list[str]) -> int:
    from ftlab.bench import main as bench_main

    return bench_main(argv)


COMMANDS: dict[str, Callable[[list[str]], int]] = {"train": _train, "predict": _predict, "bench": _bench}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "train"
    try:
        return COMMANDS[command](argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
