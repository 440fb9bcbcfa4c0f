"""`main.py search [train flags] --n_trials N --space "lr=1e-5..1e-3:log" --space "lora_r=4,8,16"`: an Optuna study
over train flags, each trial an ordinary run (ftlab.search). Any number of workers running the same command share
the study; together they run exactly N trials."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ftlab import methods
from ftlab.commands.job import Job
from ftlab.config import OneLineParser
from ftlab.console import say
from ftlab.search.args import build_parser as search_parser, parse_search_args

if TYPE_CHECKING:
    from ftlab.runs.preemption import StopRequest
    from ftlab.search.args import SearchArgs

NAME = "search"
SUMMARY = "A hyperparameter search (Optuna) over train flags; every trial is an ordinary run."


def build_parser(prog: str = "main.py") -> OneLineParser:
    return search_parser(f"{prog} {NAME}")


def prepare(argv: list[str]) -> Job:
    args = parse_search_args(argv)
    base = args.base
    return Job(run=lambda stop: search(args, stop), four_bit=methods.get(base.method.method).four_bit_base,
               verbose=base.run.verbose,
               tracking=base.tracking.wandb_mode != "disabled", trains=True,
               continue_hint=lambda: "run the same command to continue the study")


def search(args: SearchArgs, stop: Optional[StopRequest]) -> int:
    from ftlab.search.results import write_results
    from ftlab.search.storage import open_storage
    from ftlab.search.study import open_study, run_worker

    storage = open_storage(args.storage, args.study_dir, args.study_name, args.heartbeat_interval, args.grace_period)
    study = open_study(args, storage)
    say(f"study {args.study_name} in {storage.display}: {args.n_trials} trials, objective validation {args.metric} "
        f"({study.direction.name.lower()}), pruner {args.pruner}, trials in {args.study_dir}", prefix="[search]")
    run_worker(study, args, storage, stop)
    write_results(study, args, storage.display)
    return 0
