"""`main.py baseline [flags]` (the seed projects' `main.py --check_baseline [flags]`): the TF-IDF + linear SVM
baseline on exactly the splits a fine-tuning run with the same flags sees (ftlab.training.baseline)."""
from __future__ import annotations

import argparse
from typing import Optional

from ftlab.commands.job import Job
from ftlab.config import OPTIONAL_BOOL, OneLineParser, build_parser as train_parser
from ftlab.errors import ConfigError
from ftlab.runs.plan import plan_run

NAME = "baseline"
SUMMARY = "The TF-IDF + linear SVM baseline on the same splits as a fine-tuning run."
# The seed projects ran the baseline with a flag; `main.py --check_baseline [flags]` = `main.py baseline [flags]`.
BASELINE_ALIASES = ("--check_baseline", "--check_baseLine")
# The train flags the baseline reads: which rows it trains and is scored on, its n-grams, where it writes. It
# accepts the others and ignores them, so that one set of flags serves every run of a study (experiments/lib.sh).
USED_FLAGS = ("dataset", "dataset_config", "text_column", "text_pair_column", "label_column", "problem_type",
              "label_separator", "label_scaling", "class_weights", "max_train_samples", "train_subsample", "max_eval_samples",
              "max_test_samples", "validation_fraction", "test_fraction", "data_seed", "ngram_max", "output_dir",
              "overwrite_output_dir", "verbose")


def build_parser(prog: str = "main.py") -> OneLineParser:
    return train_parser(prog, shown=USED_FLAGS, usage=f"{prog} {NAME} [flags]", description=(
        "The TF-IDF + linear SVM baseline, on the splits a fine-tuning run with the same flags sees. The other "
        "train flags are accepted and ignored, so that one set of flags serves every run of a study."))


def prepare(argv: list[str]) -> Job:
    cfg = plan_run(argv)
    if cfg.run.seeds:
        raise ConfigError(f"--seeds {','.join(map(str, cfg.run.seeds))}: the baseline is deterministic (no training "
                          f"seed); it runs once, without --seeds")

    def run(stop: object) -> int:
        from ftlab.training.baseline import run_baseline  # sklearn and datasets load only now

        run_baseline(cfg)
        return 0

    return Job(run=run, verbose=cfg.run.verbose)


def split_baseline_flag(argv: list[str]) -> tuple[Optional[bool], list[str]]:
    """Whether `--check_baseline` (optionally with a value: `--check_baseLine True`, `--check_baseline=false`) asks
    for the baseline (None when absent), and the arguments without it."""
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
