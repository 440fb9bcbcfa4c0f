"""What `main.py compare` writes once every task is done: per method its tuning curve (from its study's trials),
its confirmed runs at the best configuration and its runs at the registry default; the verdicts of both tables
against their best method (the report's two-level bootstrap over seeds and test examples, Holm), the probability of
improvement, which verdicts flip once learning rates are tuned, and the budget from which the methods' ranking no
longer changes. compare.json, compare.md, two plots, and a W&B run for the study."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ftlab import tasks
from ftlab.analysis.compare import Comparison, Summary, best_by_validation, compare, summarise
from ftlab.analysis.curves import inference_ms_per_1000
from ftlab.analysis.records import Group, load_records
from ftlab.analysis.tuning import TuningCurve, probability_of_improvement, stable_budget, tuning_curve
from ftlab.compare.args import CompareArgs
from ftlab.compare.tasks import stage_records
from ftlab.console import render_table, say, short_path
from ftlab.errors import ConfigError
from ftlab.runs.directory import write_atomic, write_json_atomic

STAGE_TITLES = {"confirm": "tuned", "default": "default"}


def trial_scores(args: CompareArgs, method: str) -> tuple[list[float], list[float], dict[str, int], str]:
    """The method's complete trials in trial order: their objective (mean validation metric over the trial
    seeds) and training seconds (summed over them); the count of each trial state; and the objective's metric, the
    study's: --metric_for_best, else the task's primary metric."""
    records = [r for r in load_records(args.study_dir(method)) if r.search]
    by_trial: dict[int, list[Any]] = {}
    for record in records:
        by_trial.setdefault(record.search["trial"], []).append(record)
    scores, seconds, states = [], [], {}
    metric = args.base.run.metric_for_best or (records[0].task if records else tasks.get(None)).primary
    for number in sorted(by_trial):
        runs = by_trial[number]
        state = runs[-1].search["state"]
        states[state] = states.get(state, 0) + 1
        if state != "COMPLETE":
            continue
        scores.append(float(np.mean([run.metrics("validation")[metric] for run in runs])))
        seconds.append(float(sum(run.train_seconds for run in runs)))
    return scores, seconds, states, metric


def _stage_table(args: CompareArgs, stage: str) -> tuple[dict[str, Summary], Optional[Summary]]:
    summaries = {}
    for method in args.methods:
        records = stage_records(args, stage, method)
        if not records:
            raise ConfigError(f"compare: no {stage} run of {method} has finished: run its tasks first (--list_tasks)")
        summaries[method] = summarise(Group(records[0].group, method, records))
    best = best_by_validation(list(summaries.values()))
    return summaries, next(iter(best), None)


def _row(summary: Summary, outcome: Any, reference: Summary) -> dict[str, Any]:
    row: dict[str, Any] = {"seeds": [r.seed for r in summary.group.records], "test_scores": summary.test_score,
                           "mean": float(np.mean(summary.test_score)),
                           "sd": float(np.std(summary.test_score, ddof=1)) if summary.n > 1 else None,
                           "interval": summary.interval,
                           "validation_mean": float(np.mean(summary.validation_score)),
                           "train_seconds": float(np.mean([r.train_seconds for r in summary.group.records])),
                           "inference_ms_per_1000": inference_ms_per_1000(summary.group.records),
                           "trainable_params": summary.group.records[0].trainable_params,
                           "lr": summary.group.records[0].option("optim", "lr"),
                           "p_improvement_over_best": probability_of_improvement(
                               summary.test_score, reference.test_score, summary.task.higher_is_better)}
    if isinstance(outcome, Comparison):
        row.update(difference=outcome.difference, difference_interval=outcome.interval, p=outcome.p,
                   p_holm=outcome.adjusted_p, verdict=outcome.verdict, aso=outcome.aso)
    else:
        row.update(verdict=outcome or "not comparable")
    return row


def analyse(args: CompareArgs) -> dict[str, Any]:
    curves: dict[str, TuningCurve] = {}
    result: dict[str, Any] = {"methods": {}, "seeds": args.seeds, "trial_seeds": args.trial_seeds,
                              "trials": args.trials, "tuned": args.tune, "train_argv": args.train_argv}
    for method in args.methods:
        scores, seconds, states, metric = trial_scores(args, method)
        if len(scores) < 2:
            raise ConfigError(f"compare: {method}'s study has {len(scores)} complete trials: a tuning curve needs 2")
        curves[method] = tuning_curve(scores, seconds, support=tasks.metric_range(metric),
                                      minimize=not tasks.better_larger(metric))
        result["objective"] = metric  # the same train flags for every method: the same objective
        result["methods"][method] = {"trial_scores": scores, "trial_states": states,
                                     "tuning_curve": curves[method].__dict__}
    result["stable_budget"] = stable_budget(curves)
    for stage, title in STAGE_TITLES.items():
        summaries, reference = _stage_table(args, stage)
        outcomes = compare(list(summaries.values()), reference)
        result[f"{title}_reference"] = reference.group.name
        result["metric"], result["metric_label"] = reference.task.primary, reference.task.primary_label
        for method, summary in summaries.items():
            result["methods"][method][title] = _row(summary, outcomes.get(summary.group.id), reference)
    for method, entry in result["methods"].items():
        entry["verdict_flipped"] = entry["tuned"]["verdict"] != entry["default"]["verdict"]
    return result


def _cell_p(row: dict[str, Any]) -> str:
    return "" if "p_holm" not in row else ("<0.0001" if row["p_holm"] < 1e-4 else f"{row['p_holm']:.4f}")


def _cell_score(row: dict[str, Any]) -> str:
    spread = "" if row["sd"] is None else f" ± {row['sd']:.4f}"
    interval = "" if not row["interval"] else f" [{row['interval'][0]:.4f}, {row['interval'][1]:.4f}]"
    return f"{row['mean']:.4f}{spread}{interval}"


def _edge(value: Optional[float]) -> str:
    return "∞" if value is None else f"{value:.3f}"


def format_markdown(result: dict[str, Any]) -> str:
    # Differences of rates (accuracy, F1) in points; of other metrics (MSE) in their own units.
    label, rate = result["metric_label"], tasks.metric_range(result["metric"]) == (0.0, 1.0)
    lines = [f"# compare: {', '.join(result['methods'])}", "",
             f"Each method's learning rate{' and ' + ', '.join(result['tuned']) if result['tuned'] else ''} tuned "
             f"over {result['trials']} trials on validation (trial seeds {result['trial_seeds']}); its best "
             f"configuration and its registry default re-run on seeds {result['seeds']} and scored on test. "
             f"Verdicts against the best method of each table (by validation), from the two-level bootstrap over "
             f"seeds and test examples, Holm-corrected; P(improve): the share of seed pairs in which the method "
             f"beats the best. The ranking by expected best validation score no longer changes from "
             f"{result['stable_budget']} trials on.", "",
             f"| method | tuned lr | tuned test {label} ± sd [95% CI] | Δ vs best | p (Holm) | verdict | P(improve) | "
             f"default lr | default test {label} ± sd [95% CI] | p (Holm) | verdict | flipped |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|"]
    for method, entry in result["methods"].items():
        tuned, default = entry["tuned"], entry["default"]
        difference = "" if "difference" not in tuned else (
            f"{100 * tuned['difference']:+.1f} pts" if rate else f"{tuned['difference']:+.4f}")
        lines.append(f"| {method} | {tuned['lr']:.2g} | {_cell_score(tuned)} | {difference} | {_cell_p(tuned)} | "
                     f"{tuned['verdict']} | {tuned['p_improvement_over_best']:.2f} | {default['lr']:.2g} | "
                     f"{_cell_score(default)} | {_cell_p(default)} | {default['verdict']} | "
                     f"{'yes' if entry['verdict_flipped'] else ''} |")
    # The curve is over a study's completed trials (a pruned trial has no final score), so it can end before k = N.
    lines += ["", f"Expected best validation {result['objective']} after k completed trials "
              f"({'lowest' if not tasks.better_larger(result['objective']) else 'highest'} is best; 90% band; "
              f"pruned trials have no final score and are left out, so a curve ends at its completed trials):", "",
              "| method | completed (pruned) | " + " | ".join(f"k={k}" for k in (1, 2, 5, result["trials"])) + " |",
              "|---|---:|" + "---:|" * 4]
    for method, entry in result["methods"].items():
        curve = entry["tuning_curve"]

        def at(k: int) -> str:
            if k > len(curve["expected"]):
                return "–"
            return f"{curve['expected'][k - 1]:.4f} [{_edge(curve['lower'][k - 1])}, {_edge(curve['upper'][k - 1])}]"

        states = entry["trial_states"]
        lines.append(f"| {method} | {states.get('COMPLETE', 0)} ({states.get('PRUNED', 0)}) | "
                     + " | ".join(at(k) for k in (1, 2, 5, result["trials"])) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], directory: Path) -> list[Path]:
    from ftlab.analysis.plots import method_colors, save_figure
    from ftlab.runtime import pyplot

    plt = pyplot()
    colors = method_colors(list(result["methods"]))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for method, entry in result["methods"].items():
        curve = entry["tuning_curve"]
        for ax, x in zip(axes, (curve["trials"], curve["seconds"])):
            ax.plot(x, curve["expected"], color=colors[method], label=method, marker="o", markersize=3)
            # An unbounded edge (None: an MSE's worst case) is NaN, which fill_between leaves open.
            ax.fill_between(x, np.array(curve["lower"], dtype=float), np.array(curve["upper"], dtype=float),
                            color=colors[method], alpha=0.12)
    axes[0].set(title="Tuning curves", xlabel="trials", ylabel=f"expected best validation {result['objective']}")
    axes[1].set(title="... against compute", xlabel="training seconds (trials x mean trial)", xscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    paths = [save_figure(fig, directory / "compare_tuning_curves.png")]

    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(result["methods"])), 5))
    for index, (method, entry) in enumerate(result["methods"].items()):
        for offset, title, marker in ((-0.15, "default", "s"), (0.15, "tuned", "o")):
            row = entry[title]
            low, high = row["interval"] or (row["mean"], row["mean"])
            ax.errorbar(index + offset, row["mean"], yerr=[[row["mean"] - low], [high - row["mean"]]],
                        fmt=marker, color=colors[method], mfc="white" if title == "default" else colors[method],
                        capsize=3, label=title if index == 0 else None)
            ax.scatter([index + offset] * len(row["test_scores"]), row["test_scores"], s=8, color="grey")
    ax.set_xticks(range(len(result["methods"])), list(result["methods"]), rotation=30)
    ax.set(title=f"Test {result['metric_label']} at the default and the tuned learning rate (95% CI, seeds)",
           ylabel=f"test {result['metric_label']}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    paths.append(save_figure(fig, directory / "compare_test.png"))
    return paths


def log_to_wandb(args: CompareArgs, result: dict[str, Any]) -> Optional[dict[str, str]]:
    """With W&B on (the train flags' --wandb_project), one more run, job type compare: the table and the plots.
    A tracking failure costs the tracking only."""
    from ftlab.training.tracking import effective_mode

    tracking = args.base.tracking
    if tracking.wandb_mode == "disabled" or not tracking.wandb_project:
        return None
    try:
        import wandb

        run = wandb.init(project=tracking.wandb_project, group=tracking.wandb_group, job_type="compare",
                         name=f"compare-{args.output_dir.resolve().name}", mode=effective_mode(tracking.wandb_mode),
                         dir=str(args.output_dir), reinit="finish_previous",
                         config={"methods": args.methods, "trials": args.trials, "seeds": args.seeds,
                                 "trial_seeds": args.trial_seeds, "train_argv": args.train_argv})
        columns = ["method", "tuned_lr", "tuned_mean", "tuned_verdict", "default_mean", "default_verdict"]
        table = wandb.Table(columns=columns, data=[
            [m, e["tuned"]["lr"], e["tuned"]["mean"], e["tuned"]["verdict"], e["default"]["mean"],
             e["default"]["verdict"]] for m, e in result["methods"].items()])
        run.log({"compare": table, **{Path(path).stem: wandb.Image(path) for path in result["plots"]}})
        run.summary.update({"stable_budget": result["stable_budget"]})
        where = {"mode": run.settings.mode, "project": run.project, "id": run.id, "dir": str(Path(run.dir).parent)}
        run.finish()
        return where
    except Exception as exc:  # noqa: BLE001 - the files are written already; tracking must not fail the command
        print(f"[compare] W&B: could not log the study ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
        return None


def write_outputs(args: CompareArgs) -> dict[str, Any]:
    result = analyse(args)
    result["plots"] = [str(path) for path in plot(result, args.output_dir)]
    markdown = format_markdown(result)
    write_atomic(args.output_dir / "compare.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    result["tracking"] = log_to_wandb(args, result)
    write_json_atomic(args.output_dir / "compare.json", result)
    # The terminal gets the columns one reads first; compare.md has them all.
    rows = [[method, f"{e['tuned']['lr']:.2g}", f"{e['tuned']['mean']:.4f}", _cell_p(e["tuned"]),
             e["tuned"]["verdict"], f"{e['default']['mean']:.4f}", e["default"]["verdict"],
             "yes" if e["verdict_flipped"] else ""] for method, e in result["methods"].items()]
    label = result["metric_label"]
    print(render_table(("method", "tuned lr", f"tuned {label}", "p (Holm)", "tuned verdict", f"default {label}",
                        "default verdict", "flipped"), rows,
                       right=("tuned lr", f"tuned {label}", "p (Holm)", f"default {label}"),
                       wrap=("tuned verdict", "default verdict")))
    say(f"tuned: against {result['tuned_reference']}, default: against {result['default_reference']}; the ranking "
        f"is stable from {result['stable_budget']} trials", prefix="[compare]")
    written = (args.output_dir / "compare.json", args.output_dir / "compare.md", *result["plots"])
    say(f"written: {', '.join(short_path(path) for path in written)}", prefix="[compare]")
    return result
