"""`main.py search`'s flags: the search's own, the fixed train flags, and the space, all checked before optuna or
torch load."""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Optional

from ftlab import tasks
from ftlab.config import FIELDS, POSITIVE_INT, Config, OneLineParser, explicit_options, unused_flags
from ftlab.config.values import InvalidValue, parse_seeds
from ftlab.errors import ConfigError
from ftlab.runs.directory import STUDIES_DIR, check_output_dir, dataset_label
from ftlab.runs.plan import plan_run
from ftlab.search.space import NOT_FOR_SEARCH, SYNTAX, Param, build_space, flag_value, param_flags

PRUNERS = ("hyperband", "halving", "median", "none")
# Every combination of the space's choices and range ends is checked as a train command before the study starts;
# beyond this many, only the first ones (the rest fail as single trials, if they do).
MAX_CHECKED_POINTS = 256


@dataclass
class SearchArgs:
    n_trials: int
    space: dict[str, Param]
    study_dir: Path
    study_name: str
    storage: Optional[str]
    pruner: str
    sampler_seed: int
    heartbeat_interval: int
    grace_period: Optional[int]
    img_dir: Path
    train_argv: list[str]  # the fixed train flags, as typed
    base: Config  # ... validated
    # Seeds every trial runs with, its objective their mean (none: the one seed of the train flags).
    trial_seeds: tuple[int, ...] = ()
    # Values of the study's first trial (e.g. a method's registry default), queued when the study is created.
    first_trial: Optional[dict] = None

    @cached_property
    def metric(self) -> str:
        """The objective: --metric_for_best, else the task's primary metric (maximised, or minimised where lower
        is better: loss, MSE). Without --problem_type the task is the data's to say, which reads the dataset once
        (the trials read it again from the cache); called once the study starts, not while the flags are checked."""
        if self.base.run.metric_for_best:
            return self.base.run.metric_for_best
        problem_type = self.base.task.problem_type
        if problem_type is None:
            from ftlab.data.load import load_data

            problem_type = load_data(self.base).problem_type
        return tasks.get(problem_type).primary


def build_parser(prog: str = "main.py search") -> OneLineParser:
    parser = OneLineParser(prog=prog, allow_abbrev=False, description=(
        "Hyperparameter search over train flags with Optuna. Every other train flag (main.py --help) is fixed "
        "for all trials. Trials are compared on their final validation --metric_for_best."))
    parser.add_argument("--n_trials", type=POSITIVE_INT, default=20,
                        help="trials in the study, over all workers (default 20); a larger number later adds trials")
    parser.add_argument("--space", action="append", default=[], metavar="SPEC",
                        help=f"a searched train flag: {SYNTAX} (repeatable; replaces a --space_file entry)")
    parser.add_argument("--space_file", help="YAML: flag name -> 'LOW..HIGH', 'LOW..HIGH:log' or a list of choices")
    parser.add_argument("--output_dir", "--study_dir", dest="output_dir", help="trial directories, best_config.yaml, "
                        "trials.csv, the plots and (by default) the SQLite study (default: "
                        f"{STUDIES_DIR}/search-<dataset>-<method>)")
    parser.add_argument("--study_name", help="study name in the storage (default: the study directory's name)")
    parser.add_argument("--storage", help="Optuna storage: postgresql://user:password@host:port/db, "
                        "sqlite:///path.db or journal:PATH (default sqlite:///<study_dir>/study.db)")
    parser.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="stop hopeless trials at intermediate validations (default median)")
    parser.add_argument("--sampler_seed", type=int, default=42, help="seed of the TPE sampler (default 42)")
    parser.add_argument("--trial_seeds", default=None, help="comma-separated seeds each trial runs with (in "
                        "trial-<n>/seed<N>); the study optimises their mean (default: one run with the train seed)")
    parser.add_argument("--heartbeat_interval", type=POSITIVE_INT, default=60,
                        help="seconds between a running trial's heartbeats (database storages; default 60)")
    parser.add_argument("--grace_period", type=POSITIVE_INT, default=None,
                        help="seconds without heartbeat after which a trial counts as dead, is failed and re-queued "
                        "(default 2 x --heartbeat_interval)")
    parser.add_argument("--img_dir", help="where the two plots go (default: the output directory)")
    return parser


def parse_search_args(argv: list[str]) -> SearchArgs:
    """Search flags and fixed train flags, checked without importing optuna or torch."""
    known, train_argv = build_parser().parse_known_args(argv)
    space = build_space(known.space, known.space_file)
    typed = explicit_options(train_argv)
    for name, why in NOT_FOR_SEARCH.items():
        if name in typed:
            raise ConfigError(f"--{name} cannot be used with search: {why}")
    for name in space:
        if name in typed:
            raise ConfigError(f"--{name} is given as a fixed flag and searched (--space {space[name].describe()}): "
                              f"drop one")
    base = plan_run(train_argv)
    for name, why in NOT_FOR_SEARCH.items():  # also not from a --config file
        group, _ = FIELDS[name]
        if getattr(getattr(base, group), name):
            raise ConfigError(f"{name} (from --config) cannot be used with search: {why}")
    if known.grace_period is not None and known.grace_period <= known.heartbeat_interval:
        raise ConfigError(f"--grace_period {known.grace_period} must exceed --heartbeat_interval "
                          f"{known.heartbeat_interval}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("search runs each trial in one process: start several workers (or a SLURM array, "
                          "scripts/slurm/search_array.sbatch), not accelerate launch")
    _check_space_methods(space, base)  # before the points: its line says why such a flag cannot be searched
    _check_space_points(space, train_argv)
    method = "" if "method" in space else f"-{base.method.method}"
    study_dir = Path(known.output_dir or Path(STUDIES_DIR) / f"search-{dataset_label(base)}{method}")
    check_output_dir(study_dir)
    if known.img_dir:
        check_output_dir(known.img_dir, "--img_dir")
    return SearchArgs(n_trials=known.n_trials, space=space, study_dir=study_dir,
                      study_name=known.study_name or study_dir.resolve().name, storage=known.storage,
                      pruner=known.pruner, sampler_seed=known.sampler_seed,
                      heartbeat_interval=known.heartbeat_interval, grace_period=known.grace_period,
                      img_dir=Path(known.img_dir or study_dir), train_argv=train_argv, base=base,
                      trial_seeds=tuple(_trial_seeds(known.trial_seeds)))


def _trial_seeds(text: Optional[str]) -> list[int]:
    if text is None:
        return []
    try:
        return parse_seeds(text)
    except InvalidValue as exc:
        raise ConfigError(f"--trial_seeds {text!r}: {exc}") from None


def _check_space_methods(space: dict[str, Param], base: Config) -> None:
    """A searched flag that none of the searched methods reads (lora_r with --method head) would be "tuned" on
    noise and reported as the best value of a setting that changed nothing."""
    methods = space["method"].choices if "method" in space else (base.method.method,)
    for name, param in space.items():
        if all(unused_flags(method, [name]) for method in methods):
            raise ConfigError(f"--space {param.describe()}: --{name} does not affect --method "
                              f"{'/'.join(methods)}; search it with a method that reads it, or leave it out")


def _check_space_points(space: dict[str, Param], train_argv: list[str]) -> None:
    """Each choice and range end, in every combination, must make a valid train command (e.g. no sgd_nesterov
    with a fixed --momentum 0): found now, not after the first trials have run."""
    axes = [param.choices or (param.low, param.high) for param in space.values()]
    for point in itertools.islice(itertools.product(*axes), MAX_CHECKED_POINTS):
        values = dict(zip(space, point))
        try:
            plan_run([*train_argv, *param_flags(values)])
        except ConfigError as exc:
            shown = ", ".join(f"{name}={flag_value(value)}" for name, value in values.items())
            raise ConfigError(f"the space includes {shown}, which train refuses: {exc}") from None
