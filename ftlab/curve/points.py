"""`main.py curve`: learning curves, one ordinary run per point (method x training-set size x seed).

    python main.py curve --sizes 250,500,1000,2000,4000 --methods lora,full,head,svm --seeds 1,2,3 [train flags]

Each point trains on the first <size> rows of one seeded stratified order of the training split
(`--train_subsample nested`), so a smaller set lies inside every larger one and keeps the class ratio; validation
and test are the same at every size. A point writes its record and prediction files to
<curve_dir>/<method>/n<size>/seed<N>, like any run (so `main.py report <curve_dir>` reads them). Running the same
command again skips finished points (result.json) and continues an interrupted one from its last checkpoint
(--resume auto); `--point K` runs one point only (a SLURM array task, scripts/slurm/curve_array.sbatch). Once
every point has a record the command fits the curves (ftlab.analysis.curves) and writes curve.json, curve.md and
two plots.
"""
from __future__ import annotations

import sys
import time

from ftlab import exit_codes
from ftlab.curve.args import SVM, CurveArgs, Point, check_sizes, parse_curve_args, plan_points, point_argv
from ftlab.errors import ConfigError
from ftlab.runs.plan import plan_run


def training_rows(args: CurveArgs) -> tuple[int, str]:
    """The training split's size after validation and test are carved, read by loading the split once (a few
    seconds for IMDB's 50,000 reviews: one CSV, no model), and the dataset's name."""
    from ftlab.data.load import load_data

    cfg = plan_run(args.train_argv)
    cfg.data.max_train_samples = None
    data = load_data(cfg)
    return len(data.splits["train"]), cfg.data.dataset


def run_point(args: CurveArgs, point: Point) -> None:
    """One point as an ordinary run: skipped when finished, continued from its newest checkpoint when interrupted."""
    if (point.output_dir / "result.json").is_file():
        print(f"[curve] {point.name}: finished before (result.json), skipped", flush=True)
        return
    cfg = plan_run(point_argv(args, point))
    print(f"[curve] {point.name}: training on {point.size or 'all'} rows", flush=True)
    if point.method == SVM:
        from ftlab.training.baseline import run_baseline

        run_baseline(cfg)
    else:
        from ftlab.training.run import run_training

        run_training(cfg)


def main(argv: list[str]) -> int:
    args = parse_curve_args(argv)
    from ftlab.hub import enter_offline_mode_if_unreachable
    from ftlab.runtime import quiet_library_noise

    quiet_library_noise(args.methods[0] if args.methods[0] != SVM else None)
    enter_offline_mode_if_unreachable()  # before transformers/datasets read their offline switches
    rows, dataset = training_rows(args)
    check_sizes(args, rows, dataset)
    points = plan_points(args, rows)
    if args.list_points:
        for index, point in enumerate(points):
            print(f"{index}\t{point.method}\t{point.size or rows}\t{point.seed}\t{point.output_dir}")
        return 0
    if args.point is not None and not 0 <= args.point < len(points):
        raise ConfigError(f"--point {args.point}: the plan has points 0..{len(points) - 1} (--list_points shows them)")
    from ftlab.runs.preemption import TrainingInterrupted, stop_on_signals
    from ftlab.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    chosen = [points[args.point]] if args.point is not None else points
    print(f"[curve] {len(points)} points ({len(args.sizes)} sizes x {len(args.methods)} methods, seeds "
          f"{','.join(map(str, args.seeds))}) in {args.curve_dir}; the training split has {rows:,} rows", flush=True)
    started = time.perf_counter()
    try:
        with stop_on_signals():
            for point in chosen:
                run_point(args, point)
    except TrainingInterrupted as exc:
        print(f"[curve] interrupted: {exc}; run the same command to continue (finished points are skipped, the "
              f"interrupted one resumes) (exit code {exit_codes.INTERRUPTED})", file=sys.stderr, flush=True)
        return exit_codes.INTERRUPTED
    print(f"[curve] points done in {time.perf_counter() - started:.0f} s", flush=True)
    if args.point is not None:
        return 0
    from ftlab.curve.output import write_outputs

    write_outputs(args, points, rows, dataset)
    return 0
