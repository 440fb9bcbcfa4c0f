"""The points of `main.py curve` (ftlab.commands.curve): learning curves, one ordinary run per point (method x
training-set size x seed).

Each point trains on the first <size> rows of one seeded stratified order of the training split
(`--train_subsample nested`), so a smaller set lies inside every larger one and keeps the class ratio; validation
and test are the same at every size. A point writes its record and prediction files to
<output_dir>/<method>/n<size>/seed<N>, like any run (so `main.py report <output_dir>` reads them). Running the same
command again skips finished points (result.json) and continues an interrupted one from its last checkpoint
(--resume auto); `--point K` runs one point only (a SLURM array task, scripts/slurm/curve_array.sbatch). Once
every point has a record the command fits the curves (ftlab.analysis.curves) and writes curve.json, curve.md and
two plots.
"""
from __future__ import annotations

from ftlab.console import say
from ftlab.curve.args import SVM, CurveArgs, Point, point_argv
from ftlab.runs.plan import plan_run
from ftlab.runs.record import has_record


def training_rows(args: CurveArgs) -> tuple[int, str]:
    """The training split's size after validation and test are carved, read by loading the split once (a few
    seconds for IMDB's 50,000 reviews: one CSV, no model), and the dataset's name."""
    from ftlab.data.load import load_data

    cfg = plan_run(args.train_argv, foreign_flags="ignore")
    cfg.data.max_train_samples = None
    data = load_data(cfg)
    return len(data.splits["train"]), cfg.data.dataset


def run_point(args: CurveArgs, point: Point) -> None:
    """One point as an ordinary run: skipped when finished, continued from its newest checkpoint when interrupted."""
    if has_record(point.output_dir):
        say(f"{point.name}: finished before (result.json), skipped", prefix="[curve]")
        return
    cfg = plan_run(point_argv(args, point), foreign_flags="ignore")
    say(f"{point.name}: training on {point.size or 'all'} rows", prefix="[curve]")
    # The record says it is a point of this curve: a report of a directory around the curve leaves it out.
    sweep = {"sweep": {"command": "curve", "dir": str(args.curve_dir)}}
    if point.method == SVM:
        from ftlab.training.baseline import run_baseline

        run_baseline(cfg, extra=sweep)
    else:
        from ftlab.training.run import run_training

        run_training(cfg, extra=sweep)
