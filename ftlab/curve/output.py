"""A finished curve's outputs: the points read back as records, the analysis (ftlab.analysis.curves), and
curve.json (every number), curve.md (the tables) and two plots (accuracy vs size with fit bands; accuracy vs
training time with the Pareto frontier)."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ftlab.analysis import curves as fit
from ftlab.analysis.compare import Comparison, Summary, compare, summarise
from ftlab.analysis.plots import method_colors, save_figure
from ftlab.analysis.records import Group, group_records, load_records
from ftlab.curve.args import SVM, CurveArgs, Point
from ftlab.models.flops import FlopsModel, flops_model, training_flops
from ftlab.runs.directory import write_atomic, write_json_atomic
from ftlab.runs.record import RESULT_NAME, RunRecord
from ftlab.console import render_table, say, short_path
from ftlab.runtime import pyplot
from ftlab.training.baseline import METHOD as BASELINE_METHOD


def _records(points: list[Point]) -> dict[tuple[str, int], list[RunRecord]]:
    """(method, training rows) -> the records of its seeds."""
    found: dict[tuple[str, int], list[RunRecord]] = {}
    for point in points:
        record = RunRecord.load(point.output_dir / RESULT_NAME)
        found.setdefault((point.method, record.split_size("train")), []).append(record)
    return found


def _flops(method: str, records: list[RunRecord], models: dict[str, FlopsModel]) -> Optional[float]:
    """Mean training FLOPs of a point's seeds, counted as bench counts them (ftlab.models.flops); None for the SVM."""
    if method == SVM:
        return None
    values = []
    for record in records:
        location = record.model_location
        if location not in models:
            models[location] = flops_model(location, record.option("model", "trust_remote_code", False))
        samples = record.split_size("train") * record.option("optim", "epochs")
        values.append(training_flops(method, models[location], record.mean_train_tokens, samples))
    return float(np.mean(values))


def _cost_point(method: str, size: int, summary: Summary, models: dict[str, FlopsModel]) -> fit.CostPoint:
    """One configuration's seeds as a point of the cost frontiers: the means of their test accuracy, training
    seconds, training FLOPs and inference cost. `method` as the curve names it (`svm` for the baseline)."""
    records = summary.group.records
    return fit.CostPoint(method, size, float(np.mean(summary.test_score)),
                         float(np.mean([r.train_seconds for r in records])), _flops(method, records, models),
                         fit.inference_ms_per_1000(records))


def _outcome_fields(outcome: Optional[Any]) -> Optional[Any]:
    """A paired test's outcome as curve.json keeps it: the test's fields, or the reason it was not run as is."""
    if not isinstance(outcome, Comparison):
        return outcome
    return {"test": outcome.test, "difference": outcome.difference, "p": outcome.p,
            "adjusted_p": outcome.adjusted_p, "verdict": outcome.verdict}


def _verdicts(curves: list[fit.MethodCurve]) -> dict[int, dict[str, Any]]:
    """At each size, every method set against the best one there (highest mean test accuracy) with the report's
    paired tests, Holm-corrected over the methods of that size."""
    out = {}
    for size in sorted({size for curve in curves for size in curve.sizes}):
        here = {curve.method: curve.summaries[curve.sizes.index(size)] for curve in curves if size in curve.sizes}
        sign = 1.0 if next(iter(here.values())).task.higher_is_better else -1.0  # MSE: the lowest is best
        best = max(here, key=lambda method: sign * np.mean(here[method].test_score))
        outcomes = compare(list(here.values()), here[best])
        rows = {}
        for method, summary in here.items():
            rows[method] = _outcome_fields(outcomes.get(summary.group.id))
        out[size] = {"best": best, "against_best": rows}
    return out


def analyse(args: CurveArgs, points: list[Point], rows: int) -> tuple[dict[str, Any], list[fit.MethodCurve],
                                                                          list[fit.CostPoint]]:
    records = _records(points)
    curves = []
    for method in args.methods:
        sizes = sorted(size for m, size in records if m == method)
        summaries = [summarise(Group(f"{method}-n{size}", f"{method}/n{size}", records[method, size]))
                     for size in sizes]
        curves.append(fit.MethodCurve(method, sizes, summaries))
    fit.fit_curves(curves, rounds=args.bootstrap)
    models: dict[str, FlopsModel] = {}
    costs = [_cost_point(curve.method, size, summary, models)
             for curve in curves for size, summary in zip(curve.sizes, curve.summaries)]
    fit.mark_fronts(costs, higher_is_better=not curves or not curves[0].summaries
                    or curves[0].summaries[0].task.higher_is_better)
    point_summaries = [summary for curve in curves for summary in curve.summaries]  # in the order of costs
    result = {
        "curve_dir": str(args.curve_dir), "train_argv": args.train_argv, "training_split_rows": rows,
        "metric": _metric(curves),
        "seeds": args.seeds, "fit": {"form": "acc(n) = a - b * n^(-c)", "bounds": {"a": [0, 1], "b": [0, None],
                                                                                  "c": [fit.BOUNDS[0][2], 2]},
                                     "bootstrap_rounds": args.bootstrap, "confidence": fit.CONFIDENCE},
        "methods": {},
        "verdicts_by_size": _verdicts(curves),
        "crossovers": [fit.crossover(a, b) for a, b in itertools.combinations(curves, 2)],
        "cost": [vars(point) for point in costs],
    }
    for curve in curves:
        entry: dict[str, Any] = {
            "points": [{"size": size, "test_accuracy": summary.test_score, "mean": float(np.mean(
                summary.test_score)), "interval": summary.interval, "seeds": summary.n, "notes": summary.notes}
                for size, summary in zip(curve.sizes, curve.summaries)],
            "fit": None if curve.params is None else dict(zip("abc", map(float, curve.params))),
            "no_fit": curve.no_fit,
        }
        if curve.params is not None:
            valid = curve.draws[~np.isnan(curve.draws).any(axis=1)] if curve.draws is not None else np.empty((0, 3))
            entry["fit_intervals"] = {name: fit.percentile_interval(valid[:, i]) for i, name in enumerate("abc")}
            entry["bootstrap_rounds_fitted"] = len(valid)
            entry["extrapolated_to_full_split"] = fit.extrapolate(curve, rows)
            # A parameter on its bound was not pinned by the data (e.g. a = 1 from three small sizes): the
            # extrapolation then follows the bound, not the measurements.
            entry["at_bound"] = [name for name, value, low, high in zip("abc", curve.params, *fit.BOUNDS)
                                 if np.isclose(value, low) or np.isclose(value, high)]
        if args.target is not None:
            entry["target"] = fit.target_size(curve, args.target)
        if args.fit_up_to is not None:
            entry["holdout"] = fit.holdout_check(curve, args.fit_up_to, rounds=args.bootstrap)
        result["methods"][curve.method] = entry
    if args.recipe is not None:
        result["recipe"] = _place_recipe(args.recipe, costs, point_summaries, models)
    return result, curves, costs


def _place_recipe(directory: Path, costs: list[fit.CostPoint], point_summaries: list[Summary],
                  models: dict[str, FlopsModel]) -> dict[str, Any]:
    """--recipe's runs against the time frontier: on it or not, and each frontier point reaching a higher mean
    accuracy in no more training time, with the report's paired test against the recipe (Holm over those points).
    The recipe's seconds are only comparable when its runs were timed on the curve's machine."""
    [group] = group_records(load_records(directory))
    summary = summarise(group)
    method = group.records[0].method
    point = _cost_point(SVM if method == BASELINE_METHOD else method, group.records[0].split_size("train"),
                        summary, models)
    on_front, beaten_by = fit.place(point, costs)
    outcomes = compare([point_summaries[i] for i in beaten_by], summary)
    better = []
    for i in beaten_by:
        outcome = outcomes.get(point_summaries[i].group.id)
        better.append({"method": costs[i].method, "size": costs[i].size, "accuracy": costs[i].accuracy,
                       "train_seconds": costs[i].train_seconds,
                       "paired_test": _outcome_fields(outcome) or "no per-example predictions"})
    return {"dir": str(directory), "group": group.name, "method": method, "size": point.size, "seeds": summary.n,
            "accuracy": point.accuracy, "interval": summary.interval, "train_seconds": point.train_seconds,
            "train_flops": point.train_flops, "inference_ms_per_1000": point.inference_ms_per_1000,
            "on_time_front": on_front, "better_in_no_more_time": better}


def _interval(pair: Optional[Any], spec: str = ".3f") -> str:
    return "n/a" if pair is None else f"[{pair[0]:{spec}}, {pair[1]:{spec}}]"


def _metric(curves: list[fit.MethodCurve]) -> str:
    """The task's primary metric, which the curve's scores are (accuracy, example-based F1, MSE)."""
    return next((curve.summaries[0].task.primary for curve in curves if curve.summaries), "accuracy")


def format_markdown(result: dict[str, Any]) -> str:
    metric = result["metric"]
    lines = [f"## Learning curve: {result['curve_dir']} (training split {result['training_split_rows']:,} rows)", "",
             f"| method | size | test {metric} (mean) | 95% CI | seeds | vs best at this size | train s "
             "| train TFLOPs | ms / 1,000 texts | time frontier | FLOPs frontier | inference frontier |",
             "|---|---:|---:|---|---:|---|---:|---:|---:|---|---|---|"]
    cost = {(c["method"], c["size"]): c for c in result["cost"]}
    for method, entry in result["methods"].items():
        for point in entry["points"]:
            size = point["size"]
            verdict = result["verdicts_by_size"][size]["against_best"].get(method)
            shown = (verdict if isinstance(verdict, str) or verdict is None
                     else f"{100 * verdict['difference']:+.1f} pts, p={verdict['adjusted_p']:.3f}: {verdict['verdict']}")
            c = cost[method, size]
            flops = "n/a" if c["train_flops"] is None else f"{c['train_flops'] / 1e12:,.1f}"
            # curve.json files written before inference cost was an axis lack it
            inference = c.get("inference_ms_per_1000")
            lines.append(f"| {method} | {size:,} | {point['mean']:.4f} | {_interval(point['interval'])} "
                         f"| {point['seeds']} | {shown} | {c['train_seconds']:.1f} | {flops} "
                         f"| {'n/a' if inference is None else f'{inference:,.0f}'} "
                         f"| {'yes' if c['on_time_front'] else ''} | {'yes' if c['on_flops_front'] else ''} "
                         f"| {'yes' if c.get('on_inference_front') else ''} |")
    lines += ["", "| method | a (asymptote) | b | c | at the full split (fit, 95% interval) | target |",
              "|---|---|---:|---:|---|---|"]
    for method, entry in result["methods"].items():
        target = entry.get("target")
        reach = "" if target is None else (
            f"measured {target['smallest_measured_size'] or 'not reached'}, fitted "
            + ("not reached" if target["fitted_size"] is None else f"{target['fitted_size']:,.0f} "
               f"{_interval(target['fitted_interval'], ',.0f')}"))
        if entry["fit"] is None:
            lines.append(f"| {method} | no fit: {entry['no_fit']} | | | | {reach} |")
            continue
        full = entry["extrapolated_to_full_split"]
        bound = (f" (at its bound: {', '.join(entry['at_bound'])}; the sizes do not pin it, the extrapolation is "
                 f"unreliable)" if entry["at_bound"] else "")
        lines.append(f"| {method}{bound} | {entry['fit']['a']:.4f} {_interval(entry['fit_intervals']['a'])} "
                     f"| {entry['fit']['b']:.3g} | {entry['fit']['c']:.3f} "
                     f"| {full['accuracy']:.4f} {_interval(full['interval'])} | {reach} |")
    checks = {method: entry["holdout"] for method, entry in result["methods"].items() if entry.get("holdout")}
    if checks:
        fit_up_to = next(iter(checks.values()))["fit_up_to"]
        lines += ["", f"Extrapolation check: each method fitted on its sizes up to {fit_up_to:,} only, against what "
                  f"was measured above that:", "",
                  "| method | size | predicted (95% interval) | measured (95% CI) | error | interval covers it |",
                  "|---|---:|---|---|---:|---|"]
        for method, check in checks.items():
            if check["fit"] is None:
                lines.append(f"| {method} | | no fit: {check['no_fit']} | | | |")
            for p in check["predictions"]:
                covered = "n/a" if p["covered"] is None else ("yes" if p["covered"] else "**no**")
                lines.append(f"| {method} | {p['size']:,} | {p['predicted']:.4f} {_interval(p['predicted_interval'])} "
                             f"| {p['measured']:.4f} {_interval(p['measured_interval'])} "
                             f"| {100 * p['error']:+.1f} pts | {covered} |")
    recipe = result.get("recipe")
    if recipe:
        lines += ["", f"Recipe {recipe['dir']} ({recipe['method']}, {recipe['size']:,} training rows, "
                  f"{recipe['seeds']} seed(s)): test {metric} {recipe['accuracy']:.4f} "
                  f"{_interval(recipe['interval'])}, "
                  f"{recipe['train_seconds']:.1f} s of training: "
                  + ("on the time frontier." if recipe["on_time_front"] else "**not** on the time frontier.")]
        if recipe["better_in_no_more_time"]:
            lines += ["", "Frontier points with a higher mean accuracy in no more training time, each tested against "
                      "the recipe (paired, Holm over these points):", "",
                      "| method | size | test accuracy | train s | Δ acc | p | p (Holm) | verdict |",
                      "|---|---:|---:|---:|---:|---:|---:|---|"]
            for b in recipe["better_in_no_more_time"]:
                t = b["paired_test"]
                tested = (f"{100 * t['difference']:+.1f} pts | {t['p']:.4f} | {t['adjusted_p']:.4f} | {t['verdict']}"
                          if isinstance(t, dict) else f"| | | {t}")
                lines.append(f"| {b['method']} | {b['size']:,} | {b['accuracy']:.4f} | {b['train_seconds']:.1f} "
                             f"| {tested} |")
    crossings = [c for c in result["crossovers"] if c is not None]
    if crossings:
        lines += ["", "Crossovers of the fitted curves (within the sizes both measured):", ""]
        for c in crossings:
            share = c["share_of_rounds_crossing"]
            lines.append(f"- {c['methods'][0]} vs {c['methods'][1]}: {c['verdict']} (ahead at the smallest size: "
                         f"{c['ahead_at_smallest']}; first crossing {_interval(c['interval'], ',.0f')} in "
                         f"{'n/a' if share is None else f'{100 * share:.0f}%'} of bootstrap rounds)")
    return "\n".join(lines) + "\n"


def plot_curves(curves: list[fit.MethodCurve], rows: int, path: Path, metric: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = method_colors([curve.method for curve in curves])
    for curve in curves:
        color = colors[curve.method]
        means = curve.mean_accuracy
        errors = np.array([[m - s.interval[0], s.interval[1] - m] if s.interval else [0, 0]
                           for m, s in zip(means, curve.summaries)]).T
        ax.errorbar(curve.sizes, means, yerr=errors, fmt="o", color=color, capsize=3, label=curve.method)
        if curve.params is not None:
            grid = np.geomspace(min(curve.sizes), max(rows, max(curve.sizes)), fit.GRID_POINTS)
            ax.plot(grid, fit.power_law(grid, *curve.params), color=color, linewidth=1)
            shaded = fit.band(curve, grid)
            if shaded is not None:
                ax.fill_between(grid, *shaded, color=color, alpha=0.15, linewidth=0)
    ax.axvline(rows, color="grey", linestyle=":", linewidth=1, label=f"full split ({rows:,})")
    ax.set(xscale="log", xlabel="training examples (log scale)", ylabel=f"test {metric}",
           title="Learning curves: mean over seeds, 95% CI; fit a - b*n^-c with 95% bootstrap band")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def plot_frontier(costs: list[fit.CostPoint], path: Path, recipe: Optional[dict[str, Any]], metric: str) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = method_colors(list(dict.fromkeys(point.method for point in costs)))
    for point in costs:
        ax.scatter(point.train_seconds, point.accuracy, color=colors[point.method],
                   edgecolor="black" if point.on_time_front else "none", s=40, zorder=3)
        ax.annotate(f"{point.method} {point.size:,}", (point.train_seconds, point.accuracy), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = sorted((p for p in costs if p.on_time_front), key=lambda p: p.train_seconds)
    ax.step([p.train_seconds for p in front], [p.accuracy for p in front], where="post", color="black",
            linewidth=1, label="Pareto frontier (accuracy vs training time)")
    if recipe:
        ax.scatter(recipe["train_seconds"], recipe["accuracy"], marker="*", s=160, color="black", zorder=4,
                   label=f"recipe: {recipe['method']} {recipe['size']:,} "
                         f"({'on' if recipe['on_time_front'] else 'off'} the frontier)")
    ax.set(xscale="log", xlabel="training seconds per run (log scale)", ylabel=f"test {metric} (mean over seeds)",
           title="Cost frontier: accuracy against training time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def log_to_wandb(args: CurveArgs, result: dict[str, Any]) -> Optional[dict[str, str]]:
    """With a W&B project set (the train flags' --wandb_project or WANDB_PROJECT), one more run, job type curve,
    in the curve directory: the points as a table, the fits in the summary, the two plots. A tracking failure costs
    the tracking only, as for training runs (ftlab.training.tracking)."""
    from ftlab.training.tracking import effective_mode

    tracking = args.base.tracking
    if tracking.wandb_mode == "disabled" or not tracking.wandb_project:
        return None
    mode = effective_mode(tracking.wandb_mode)
    try:
        import wandb

        run = wandb.init(project=tracking.wandb_project, group=tracking.wandb_group, job_type="curve",
                         name=f"curve-{args.curve_dir.resolve().name}", mode=mode, dir=str(args.curve_dir),
                         config={"train_argv": args.train_argv, "sizes": [p["size"] for p in next(iter(
                             result["methods"].values()))["points"]], "methods": list(result["methods"]),
                             "seeds": args.seeds}, reinit="finish_previous")
        columns = ["method", "size", "test_accuracy", "ci_low", "ci_high", "train_seconds", "train_flops",
                   "on_time_front"]
        cost = {(c["method"], c["size"]): c for c in result["cost"]}
        table = wandb.Table(columns=columns, data=[
            [method, p["size"], p["mean"], *(p["interval"] or (None, None)), cost[method, p["size"]]["train_seconds"],
             cost[method, p["size"]]["train_flops"], cost[method, p["size"]]["on_time_front"]]
            for method, entry in result["methods"].items() for p in entry["points"]])
        run.log({"curve": table, **{Path(path).stem: wandb.Image(path) for path in result["plots"]}})
        run.summary.update({f"{method}/fit_{name}": value for method, entry in result["methods"].items()
                            for name, value in (entry["fit"] or {}).items()})
        where = {"mode": run.settings.mode, "project": run.project, "id": run.id, "dir": str(Path(run.dir).parent)}
        run.finish()
        return where
    except Exception as exc:  # noqa: BLE001 - the curve's files are written already; tracking must not fail it
        print(f"[curve] W&B: could not log the curve ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
        return None


def compact_table(result: dict[str, Any]) -> str:
    """The terminal's view of the curve: one row per (method, size), narrow enough for the console's width; the fit,
    the targets and the extrapolation check stay in curve.md."""
    cost = {(c["method"], c["size"]): c for c in result["cost"]}
    rows = []
    for method, entry in result["methods"].items():
        for point in entry["points"]:
            verdict = result["verdicts_by_size"][point["size"]]["against_best"].get(method)
            shown = (verdict or "" if isinstance(verdict, str) or verdict is None
                     else f"{100 * verdict['difference']:+.1f} {verdict['verdict']}")
            c = cost[method, point["size"]]
            front = "time" if c["on_time_front"] else ""
            rows.append([method, f"{point['size']:,}", f"{point['mean']:.4f}", _interval(point["interval"]),
                         shown, f"{c['train_seconds']:.0f}", front])
    score = f"test {result['metric']}"
    return render_table(("method", "size", score, "95% CI", "vs best", "train s", "front"), rows,
                        right=("size", score, "train s"), wrap=("vs best",))


def write_outputs(args: CurveArgs, points: list[Point], rows: int, dataset: str) -> dict[str, Any]:
    result, curves, costs = analyse(args, points, rows)
    result["dataset"] = dataset
    name = args.curve_dir.resolve().name
    result["plots"] = [str(plot_curves(curves, rows, args.img_dir / f"{name}_accuracy.png", result["metric"])),
                       str(plot_frontier(costs, args.img_dir / f"{name}_frontier.png", result.get("recipe"),
                                         result["metric"]))]
    markdown = format_markdown(result)
    write_atomic(args.curve_dir / "curve.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    result["tracking"] = log_to_wandb(args, result)
    write_json_atomic(args.curve_dir / "curve.json", result)
    print(compact_table(result), flush=True)
    recipe = result.get("recipe")
    if recipe:
        better = len(recipe["better_in_no_more_time"])
        say(f"recipe {recipe['dir']}: test {result['metric']} {recipe['accuracy']:.4f} in "
            f"{recipe['train_seconds']:.1f} s, "
            + ("on the time frontier" if recipe["on_time_front"] else "not on the time frontier")
            + (f"; {better} frontier point(s) more accurate in no more time, tested in curve.md" if better else ""),
            prefix="[curve]")
    for curve in curves:
        if curve.no_fit:
            print(f"[curve] {curve.method}: no fitted curve: {curve.no_fit}", flush=True)
    say(f"written: {short_path(args.curve_dir / 'curve.md')} (every table: the fits, targets and the extrapolation "
        f"check), curve.json, {', '.join(short_path(Path(plot)) for plot in result['plots'])}", prefix="[curve]")
    return result
