"""`main.py curve --sizes 250,500,1000 --methods lora,full,head,svm --seeds 1,2,3 [train flags]`: learning curves,
one ordinary run per point (method x training-set size x seed, ftlab.curve), then the fits, crossovers and the
cost frontier."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ftlab import methods
from ftlab.commands.job import Job
from ftlab.config import OneLineParser
from ftlab.console import say
from ftlab.curve.args import SVM, build_parser as curve_parser, check_sizes, parse_curve_args, plan_points
from ftlab.errors import ConfigError

if TYPE_CHECKING:
    from ftlab.curve.args import CurveArgs

NAME = "curve"
SUMMARY = "Learning curves over training-set sizes, methods and seeds; fits and the cost frontier."


def build_parser(prog: str = "main.py") -> OneLineParser:
    return curve_parser(f"{prog} {NAME}")


def prepare(argv: list[str]) -> Job:
    args = parse_curve_args(argv)
    # the 4-bit kernels' notices concern 4-bit bases: kept when any point trains on one
    four_bit = any(methods.get(m).four_bit_base for m in args.methods if m != SVM)
    return Job(run=lambda stop: curve(args), four_bit=four_bit, verbose=args.base.run.verbose, trains=True,
               tracking=args.base.tracking.wandb_mode != "disabled",
               continue_hint=lambda: "run the same command to continue (finished points are skipped, the "
                                     "interrupted one resumes)")


def curve(args: CurveArgs) -> int:
    from ftlab.curve.points import run_point, training_rows

    rows, dataset = training_rows(args)
    check_sizes(args, rows, dataset)
    points = plan_points(args, rows)
    if args.list_points:
        for index, point in enumerate(points):
            print(f"{index}\t{point.method}\t{point.size or rows}\t{point.seed}\t{point.output_dir}")
        return 0
    if args.point is not None and not 0 <= args.point < len(points):
        raise ConfigError(f"--point {args.point}: the plan has points 0..{len(points) - 1} (--list_points shows them)")
    chosen = [points[args.point]] if args.point is not None else points
    say(f"{len(points)} points ({len(args.sizes)} sizes x {len(args.methods)} methods, seeds "
        f"{','.join(map(str, args.seeds))}) in {args.curve_dir}; the training split has {rows:,} rows",
        prefix="[curve]")
    started = time.perf_counter()
    for point in chosen:
        run_point(args, point)
    say(f"points done in {time.perf_counter() - started:.0f} s", prefix="[curve]")
    if args.point is not None:
        return 0
    from ftlab.curve.output import write_outputs

    write_outputs(args, points, rows, dataset)
    return 0
