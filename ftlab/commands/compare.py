"""`main.py compare --methods full,head,lora,ia3 --trials 10 --seeds 1,2,3 [--tune lora_r] [train flags]`: each
method's learning rate tuned on validation by its own Optuna study, its best configuration and its registry default
re-run on fresh seeds and scored on test, the verdicts against the best method in both tables, and the tuning
curves (ftlab.compare)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftlab import methods
from ftlab.commands.job import Job
from ftlab.compare.args import build_parser as compare_parser, parse_compare_args
from ftlab.config import OneLineParser
from ftlab.console import say

if TYPE_CHECKING:
    from ftlab.compare.args import CompareArgs

NAME = "compare"
SUMMARY = "Each method at its own tuned learning rate, confirmed on fresh seeds; tuning curves."


def build_parser(prog: str = "main.py") -> OneLineParser:
    return compare_parser(f"{prog} {NAME}")


def prepare(argv: list[str]) -> Job:
    args = parse_compare_args(argv)
    tracking = args.base.tracking.wandb_mode != "disabled"
    return Job(run=lambda stop: compare(args, stop), four_bit=any(methods.get(m).four_bit_base for m in args.methods),
               verbose=args.base.run.verbose, tracking=tracking, trains=True,
               continue_hint=lambda: "run the same command to continue (finished trials and runs are kept, the "
                                     "interrupted one continues)")


def compare(args: "CompareArgs", stop: Any) -> int:
    from ftlab.compare.tasks import run_task

    tasks = args.tasks()
    if args.list_tasks:
        for index, task in enumerate(tasks):
            print(f"{index}\t{task.stage}\t{task.method}\t{'' if task.seed is None else task.seed}")
        return 0
    chosen = [tasks[args.task]] if args.task is not None else tasks
    say(f"{len(args.methods)} methods x {args.trials} trials, then seeds {','.join(map(str, args.seeds))} of each "
        f"method's best and default configuration, in {args.output_dir}", prefix="[compare]")
    for task in chosen:
        run_task(args, task, stop)
    if args.task is not None:
        return 0
    from ftlab.compare.output import write_outputs

    write_outputs(args)
    return 0
