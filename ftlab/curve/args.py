"""`main.py curve`'s flags and its point plan: sizes x methods x seeds, each point an ordinary run's argv, all
checked before anything heavy loads (the sizes against the training split once it is loaded, see command)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab import methods
from ftlab.analysis.records import group_records, load_records
from ftlab.config import Config, OneLineParser, explicit_options
from ftlab.config.rules import check_flags_for_methods
from ftlab.config.values import InvalidValue, parse_seeds
from ftlab.errors import ConfigError
from ftlab.runs.directory import INDEX_NAME, STUDIES_DIR, check_output_dir, dataset_label
from ftlab.runs.plan import plan_run
from ftlab.runs.record import RESULT_NAME

SVM = "svm"  # the TF-IDF + linear SVM baseline (ftlab.training.baseline)
CURVE_METHODS = (*methods.names(), SVM)
ALL = "all"
# Train flags a curve sets itself, per point; typed by the user they would be overridden or collide.
SET_PER_POINT = {
    "method": "the curve's --methods chooses it per point",
    "max_train_samples": "the curve's --sizes choose it per point",
    "train_subsample": "the curve's training sets are always nested",
    "seed": "the curve's --seeds choose it per point",
    "overwrite_output_dir": "finished points are kept and skipped",
    "resume": "an interrupted point always continues (--resume auto)",
    "eval_only": "a curve trains",
    "save_adapter": "every point would save to the same directory",
}


@dataclass
class Point:
    method: str
    size: Optional[int]  # None: the whole training split ('all')
    seed: int
    output_dir: Path

    @property
    def name(self) -> str:
        return f"{self.method}/{self.output_dir.parent.name}/{self.output_dir.name}"


@dataclass
class CurveArgs:
    sizes: list[Optional[int]]  # ascending; None = all
    methods: list[str]
    seeds: list[int]
    curve_dir: Path
    img_dir: Path
    target: Optional[float]
    fit_up_to: Optional[int]
    bootstrap: int
    point: Optional[int]
    list_points: bool
    train_argv: list[str]
    base: Config  # the fixed train flags, validated
    recipe: Optional[Path] = None  # the runs (one configuration's seeds) to set against the cost frontier


def build_parser(prog: str = "main.py curve") -> OneLineParser:
    parser = OneLineParser(prog=prog, allow_abbrev=False, description=(
        "Learning curves: every method trained on nested, stratified training sets of several sizes, with "
        "several seeds; then fits, crossovers and the cost frontier. Every other train flag (main.py --help) is "
        "fixed for all points."))
    parser.add_argument("--sizes", default="250,500,1000,2000,4000",
                        help="comma-separated training-set sizes, at least two ('all' = the whole training split; "
                             "default 250,500,1000,2000,4000); at least three for a fitted curve")
    parser.add_argument("--methods", default=",".join((*methods.STUDY_METHODS, SVM)),
                        help=f"comma-separated, of {', '.join(CURVE_METHODS)} (svm = the TF-IDF baseline, "
                             f"deterministic: one run per size; default {','.join((*methods.STUDY_METHODS, SVM))})")
    parser.add_argument("--seeds", default="1,2,3", help="training seeds of each point (default 1,2,3)")
    parser.add_argument("--output_dir", "--curve_dir", dest="output_dir", help="where the points (<method>/n<size>/"
                        f"seed<N>), curve.json, curve.md and the plots go (default: {STUDIES_DIR}/curve-<dataset>)")
    parser.add_argument("--img_dir", help="where the two plots go (default: the output directory)")
    parser.add_argument("--target", type=float, default=None,
                        help="a test accuracy (0..1): per method the smallest size reaching it, measured and fitted")
    parser.add_argument("--fit_up_to", type=int, default=None, metavar="N",
                        help="also fit each method on its sizes up to N only and set that fit's prediction (with "
                             "its interval) beside the accuracy measured at every larger size: how far the "
                             "extrapolation can be trusted")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="bootstrap rounds for the fit's intervals (default 1000; 0: none)")
    parser.add_argument("--recipe", metavar="DIR", default=None,
                        help="the finished runs of one configuration (its seeds; e.g. make run's default recipe, "
                             "timed on the same machine and scored on the same test examples) to set against the "
                             "cost frontier: whether it lies on it, and the paired test against every frontier "
                             "point that reaches a higher mean accuracy in no more training time")
    parser.add_argument("--point", type=int, default=None, metavar="INDEX",
                        help="run only this point of the plan (0-based, as --list_points numbers them; a SLURM "
                             "array task's index) and no analysis")
    parser.add_argument("--list_points", action="store_true", help="print the plan, one point a line, and stop")
    return parser


def _sizes(text: str) -> list[Optional[int]]:
    sizes: list[Optional[int]] = []
    for item in (part.strip() for part in text.split(",")):
        if item.lower() == ALL:
            sizes.append(None)
            continue
        try:
            size = int(item)
        except ValueError:
            size = 0
        if size < 1:
            raise ConfigError(f"--sizes {text!r}: {item!r} is neither a positive integer nor 'all'")
        sizes.append(size)
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"--sizes {text!r}: a size is repeated")
    if len(sizes) < 2:
        raise ConfigError(f"--sizes {text!r}: a curve needs at least two sizes (three for a fitted curve)")
    return sorted(sizes, key=lambda size: float("inf") if size is None else size)


def _methods(text: str) -> list[str]:
    methods = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in methods if item not in CURVE_METHODS]
    if bad or not methods:
        raise ConfigError(f"--methods {text!r}: unknown method {bad[0] if bad else '(none)'!r}; each must be one "
                          f"of {', '.join(CURVE_METHODS)}")
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--methods {text!r}: a method is repeated")
    return methods


def _recipe(text: Optional[str]) -> Optional[Path]:
    """--recipe's directory, checked now: it must hold the finished runs of exactly one configuration."""
    if text is None:
        return None
    path = Path(text)
    groups = group_records(load_records(path)) if path.is_dir() else []
    if len(groups) != 1:
        found = ("is not a directory" if not path.is_dir() else f"holds no finished run ({RESULT_NAME} or "
                 f"{INDEX_NAME})"
                 if not groups else f"holds {len(groups)} configurations ({', '.join(g.name for g in groups)}); "
                 f"give the directory of one configuration's seeds")
        raise ConfigError(f"--recipe {text}: {found}")
    return path


def parse_curve_args(argv: list[str]) -> CurveArgs:
    """The curve's flags and the fixed train flags, checked without importing torch or datasets."""
    known, train_argv = build_parser().parse_known_args(argv)
    sizes, methods = _sizes(known.sizes), _methods(known.methods)
    try:
        seeds = parse_seeds(known.seeds)
    except InvalidValue as exc:
        raise ConfigError(f"--seeds {known.seeds!r}: {exc}") from None
    if known.target is not None and not 0 < known.target <= 1:
        raise ConfigError(f"--target {known.target}: a test accuracy between 0 (exclusive) and 1")
    if known.fit_up_to is not None:
        fitted = [size for size in sizes if size is not None and size <= known.fit_up_to]
        if len(fitted) < 3 or len(fitted) == len(sizes):
            raise ConfigError(f"--fit_up_to {known.fit_up_to}: needs at least three of --sizes at or below it (has "
                              f"{len(fitted)}) and at least one above it")
    if known.bootstrap < 0:
        raise ConfigError(f"--bootstrap {known.bootstrap}: a number of rounds >= 0")
    recipe = _recipe(known.recipe)
    typed = explicit_options(train_argv)
    for name, why in SET_PER_POINT.items():
        if name in typed:
            raise ConfigError(f"--{name} cannot be used with curve: {why}")
    check_flags_for_methods([m for m in methods if m != SVM], typed, "curve")
    base = plan_run(train_argv, foreign_flags="ignore")
    curve_dir = Path(known.output_dir or Path(STUDIES_DIR) / f"curve-{dataset_label(base)}")
    check_output_dir(curve_dir)
    if known.img_dir:
        check_output_dir(known.img_dir, "--img_dir")
    args = CurveArgs(sizes=sizes, methods=methods, seeds=seeds, curve_dir=curve_dir,
                     img_dir=Path(known.img_dir or curve_dir),
                     target=known.target, fit_up_to=known.fit_up_to, bootstrap=known.bootstrap, point=known.point,
                     list_points=known.list_points, train_argv=train_argv, base=base, recipe=recipe)
    for point in plan_points(args, rows=None):  # every method's flags checked now, on a stand-in size
        plan_run(point_argv(args, point), foreign_flags="ignore")
    return args


def plan_points(args: CurveArgs, rows: Optional[int]) -> list[Point]:
    """Sizes ascending, then methods, then seeds: an interrupted curve has its small sizes whole first. `rows`,
    the training split's size, names the 'all' size's directory (n<rows>); the SVM runs once per size (it is
    deterministic), under the first seed."""
    points = []
    for size in args.sizes:
        label = f"n{size or rows or ALL}"
        for method in args.methods:
            for seed in (args.seeds[:1] if method == SVM else args.seeds):
                points.append(Point(method, size, seed, args.curve_dir / method / label / f"seed{seed}"))
    return points


def point_argv(args: CurveArgs, point: Point) -> list[str]:
    """The train (or baseline) argv of one point: the fixed flags, then the point's own."""
    method = [] if point.method == SVM else ["--method", point.method]
    return [*args.train_argv, *method, "--max_train_samples", str(point.size or ALL), "--train_subsample", "nested",
            "--seed", str(point.seed), "--output_dir", str(point.output_dir), "--resume", "auto"]


def check_sizes(args: CurveArgs, rows: int, dataset: str) -> None:
    """Every size must fit the training split (whose size is `rows`); 'all' is the split itself."""
    too_large = [size for size in args.sizes if size is not None and size > rows]
    if too_large:
        raise ConfigError(f"--sizes: {too_large[0]:,} is larger than the training split of {dataset}, which has "
                          f"{rows:,} rows (use sizes up to {rows:,}, or 'all')")
    if rows in args.sizes and None in args.sizes:
        raise ConfigError(f"--sizes: {rows} and 'all' are the same size here (the training split has {rows:,} rows)")
