"""`main.py compare`'s flags and its plan: per method a tuning study (the search machinery), then confirmation runs
of its best configuration and runs at its registry default on fresh seeds; all checked before anything heavy loads.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab import methods
from ftlab.config import POSITIVE_INT, Config, OneLineParser, explicit_options
from ftlab.config.rules import check_flags_for_methods
from ftlab.config.values import InvalidValue, parse_seeds
from ftlab.errors import ConfigError
from ftlab.runs.directory import STUDIES_DIR, check_output_dir, dataset_label
from ftlab.runs.plan import plan_run
from ftlab.search.args import PRUNERS, SearchArgs
from ftlab.search.space import Param, flag_value, parse_spec

TUNED = "lr"  # always tuned, on the method's own log range
# Train flags compare sets itself; typed by the user they would be overridden or collide.
SET_BY_COMPARE = {
    "method": "compare's --methods chooses it per study",
    "lr": "each method's learning rate is tuned on its own range (ftlab/methods)",
    "seed": "--trial_seeds and --seeds choose them",
    "seeds": "--trial_seeds and --seeds choose them",
    "output_dir": "every run goes under compare's --output_dir",
    "overwrite_output_dir": "finished runs are kept and reused",
    "resume": "an interrupted run always continues (--resume auto)",
    "eval_only": "compare trains",
    "save_adapter": "every run would save to the same directory",
}
STAGES = ("tune", "confirm", "default")


@dataclass(frozen=True)
class Task:
    """One unit of the plan: a method's tuning study (all its trials), or one run of its best (confirm) or its
    registry default (default) configuration on one of --seeds."""
    stage: str
    method: str
    seed: Optional[int] = None

    @property
    def name(self) -> str:
        return f"{self.stage} {self.method}" + (f" seed {self.seed}" if self.seed is not None else "")


@dataclass
class CompareArgs:
    methods: list[str]
    trials: int
    seeds: list[int]
    trial_seeds: list[int]
    tune: list[str]
    output_dir: Path
    storage: Optional[str]
    pruner: str
    sampler_seed: int
    heartbeat_interval: int
    grace_period: Optional[int]
    reuse: list[Path]
    task: Optional[int]
    list_tasks: bool
    train_argv: list[str]
    base: Config

    def method_argv(self, method: str) -> list[str]:
        return [*self.train_argv, "--method", method]

    def space(self, method: str) -> dict[str, Param]:
        """The method's tuned hyperparameters: its learning rate on its own log range, and --tune's from its
        registry entry."""
        low, high = methods.get(method).lr_range
        space = {TUNED: parse_spec(f"{TUNED}={low!r}..{high!r}:log")}
        for name in self.tune:
            space[name] = parse_spec(f"{name}={methods.get(method).search_space[name]}")
        return space

    def study_dir(self, method: str) -> Path:
        return self.output_dir / "tune" / method

    def run_dir(self, stage: str, method: str, seed: int) -> Path:
        return self.output_dir / stage / method / f"seed{seed}"

    def search_args(self, method: str) -> SearchArgs:
        """The method's tuning study as the search machinery runs it; its first trial is the registry default."""
        study_dir = self.study_dir(method)
        default = {TUNED: methods.get(method).default_lr}
        return SearchArgs(n_trials=self.trials, space=self.space(method), study_dir=study_dir,
                          study_name=f"{self.output_dir.resolve().name}-{method}", storage=self.storage,
                          pruner=self.pruner, sampler_seed=self.sampler_seed,
                          heartbeat_interval=self.heartbeat_interval, grace_period=self.grace_period,
                          img_dir=study_dir, train_argv=self.method_argv(method),
                          base=plan_run(self.method_argv(method), foreign_flags="ignore"),
                          trial_seeds=tuple(self.trial_seeds), first_trial=default)

    def tasks(self) -> list[Task]:
        """Tuning first (one study per method), then each method's confirmation and default runs per seed."""
        tasks = [Task("tune", method) for method in self.methods]
        for method in self.methods:
            tasks += [Task(stage, method, seed) for stage in ("confirm", "default") for seed in self.seeds]
        return tasks


def build_parser(prog: str = "main.py compare") -> OneLineParser:
    parser = OneLineParser(prog=prog, allow_abbrev=False, description=(
        "Every method at its own tuned learning rate, confirmed on fresh seeds: an Optuna study per method on "
        "validation, its best configuration and its registry default re-run on --seeds and scored on test, the "
        "verdicts against the best method, and tuning curves. Every other train flag (main.py --help) is fixed for "
        "all runs."))
    parser.add_argument("--methods", required=True, help="comma-separated methods of the registry (docs: methods)")
    parser.add_argument("--trials", type=POSITIVE_INT, default=10,
                        help="trials per method's study, at least 2 (default 10); a larger number later adds trials")
    parser.add_argument("--seeds", default="1,2,3", help="fresh seeds of the confirmation and default runs "
                        "(default 1,2,3)")
    parser.add_argument("--trial_seeds", default=None, help="seeds of every trial, whose mean validation score the "
                        "study optimises (default: the train seed, 42); none of them among --seeds")
    parser.add_argument("--tune", default="", help="hyperparameters tuned beside the learning rate, comma-separated, "
                        "each on the range its method declares (e.g. lora_r; docs: methods)")
    parser.add_argument("--output_dir", help=f"where the studies, runs and compare.json/.md/plots go (default: "
                        f"{STUDIES_DIR}/compare-<dataset>)")
    parser.add_argument("--reuse", action="append", default=[], metavar="DIR", help="finished runs (e.g. of "
                        "experiments/all_methods.sh) whose configuration and seed equal a default run's: read, not "
                        "run again (repeatable)")
    parser.add_argument("--storage", help="Optuna storage of the studies (default: a SQLite file per study); "
                        "postgresql://... for workers on several machines")
    parser.add_argument("--pruner", choices=PRUNERS, default="hyperband", help="stop hopeless trials at their "
                        "intermediate validations: hyperband (default), halving (successive halving), median, none")
    parser.add_argument("--sampler_seed", type=int, default=42, help="seed of the TPE sampler (default 42)")
    parser.add_argument("--heartbeat_interval", type=POSITIVE_INT, default=60,
                        help="seconds between a running trial's heartbeats (database storages; default 60)")
    parser.add_argument("--grace_period", type=POSITIVE_INT, default=None,
                        help="seconds without heartbeat after which a trial counts as dead (default 2 x heartbeat)")
    parser.add_argument("--task", type=int, default=None, metavar="INDEX",
                        help="run only this task of the plan (0-based, as --list_tasks numbers them; a SLURM array "
                        "task's index) and no analysis")
    parser.add_argument("--list_tasks", action="store_true", help="print the plan, one task a line, and stop")
    return parser


def _seeds(flag: str, text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except InvalidValue as exc:
        raise ConfigError(f"{flag} {text!r}: {exc}") from None


def _methods(text: str) -> list[str]:
    names = [methods.get(item.strip()).name for item in text.split(",") if item.strip()]
    if not names:
        raise ConfigError(f"--methods {text!r}: name at least one method")
    if len(set(names)) != len(names):
        raise ConfigError(f"--methods {text!r}: a method is repeated")
    return names


def _tuned(text: str, chosen: list[str]) -> list[str]:
    names = [item.strip() for item in text.split(",") if item.strip()]
    for name in names:
        if name == TUNED:
            raise ConfigError(f"--tune {text!r}: the learning rate is always tuned")
        lacking = [m for m in chosen if name not in methods.get(m).search_space]
        if lacking:
            own = ", ".join(sorted(methods.get(lacking[0]).search_space)) or "nothing"
            raise ConfigError(f"--tune {name}: not a hyperparameter of --method {lacking[0]} (it tunes {own} beside "
                              f"the learning rate)")
    return names


def parse_compare_args(argv: list[str]) -> CompareArgs:
    """compare's flags and the fixed train flags, checked without importing torch, datasets or optuna."""
    known, train_argv = build_parser().parse_known_args(argv)
    chosen = _methods(known.methods)
    if known.trials < 2:
        raise ConfigError(f"--trials {known.trials}: a study needs at least 2 trials (a tuning curve of one point "
                          f"says nothing)")
    seeds = _seeds("--seeds", known.seeds)
    typed = explicit_options(train_argv)
    for name, why in SET_BY_COMPARE.items():
        if name in typed:
            raise ConfigError(f"--{name} cannot be used with compare: {why}")
    check_flags_for_methods(chosen, typed, "compare")
    base = plan_run(train_argv, foreign_flags="ignore")
    trial_seeds = _seeds("--trial_seeds", known.trial_seeds) if known.trial_seeds else [base.run.seed]
    shared = sorted(set(trial_seeds) & set(seeds))
    if shared:
        raise ConfigError(f"--seeds {known.seeds} and --trial_seeds {','.join(map(str, trial_seeds))} share seed "
                          f"{shared[0]}: the confirmation must run on seeds the tuning never saw")
    output_dir = Path(known.output_dir or Path(STUDIES_DIR) / f"compare-{dataset_label(base)}")
    check_output_dir(output_dir)
    reuse = [Path(path) for path in known.reuse]
    missing = [path for path in reuse if not path.is_dir()]
    if missing:
        raise ConfigError(f"--reuse {missing[0]}: no such directory")
    args = CompareArgs(methods=chosen, trials=known.trials, seeds=seeds, trial_seeds=trial_seeds,
                       tune=_tuned(known.tune, chosen), output_dir=output_dir, storage=known.storage,
                       pruner=known.pruner, sampler_seed=known.sampler_seed,
                       heartbeat_interval=known.heartbeat_interval, grace_period=known.grace_period, reuse=reuse,
                       task=known.task, list_tasks=known.list_tasks, train_argv=train_argv, base=base)
    if args.task is not None and not 0 <= args.task < len(args.tasks()):
        raise ConfigError(f"--task {args.task}: the plan has tasks 0..{len(args.tasks()) - 1} (--list_tasks)")
    for method in chosen:  # every study's flags and every range end, checked as train would check them
        for param in args.space(method).values():
            for value in param.choices or (param.low, param.high):
                plan_run([*args.method_argv(method), f"--{param.name}", flag_value(value)])
    return args
