"""What a search leaves besides its trial runs: best_config.yaml (the best trial's configuration, reusable with
--config), trials.csv (every trial: state, value, parameters, worker, directory, error), Optuna's optimization
history and parameter importance plots, and a summary on the console.

Every worker writes them when it stops, each file atomically, so the last worker to stop leaves the final ones.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import yaml

from ftlab.console import say, short_path
from ftlab.runtime import pyplot
from ftlab.runs.directory import write_atomic
from ftlab.runs.plan import plan_run
from ftlab.runs.record import RESULT_NAME, RunRecord
from ftlab.search.space import param_flags, show_params

if TYPE_CHECKING:
    from ftlab.search.args import SearchArgs


def best_config(study: Any, args: "SearchArgs") -> dict[str, Any]:
    """The best trial's configuration as `train` resolves it (fixed flags + its values), without a directory."""
    cfg = plan_run([*args.train_argv, *param_flags(study.best_trial.params)])
    cfg.run.output_dir = None
    return cfg.to_dict()


def write_plots(study: Any, img_dir: Path, name: str, target_name: str, seed: int) -> list[Path]:
    plt = pyplot()
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import matplotlib as optuna_plots

    # Optuna 5's default importance (PED-ANOVA) wants several trials above its top-10% quantile, i.e. dozens of
    # trials; fANOVA's random forest says something from a dozen. Seeded, so the plot is reproducible.
    plots = {"optimization_history": lambda: optuna_plots.plot_optimization_history(study, target_name=target_name),
             "param_importances": lambda: optuna_plots.plot_param_importances(
                 study, evaluator=FanovaImportanceEvaluator(seed=seed), target_name=target_name)}
    written = []
    for plot, draw in plots.items():
        if plot == "param_importances" and len(_complete_trials(study)) < 2:
            say("no parameter importances yet: they need two complete trials", prefix="[search]")
            continue
        try:
            figure = draw().figure
        except RuntimeError as exc:  # fANOVA: every complete trial has the same value, nothing to attribute
            say(f"no {plot.replace('_', ' ')} plot: {exc}", prefix="[search]")
            continue
        figure.tight_layout()
        written.append(write_atomic(img_dir / f"{name}_{plot}.png",
                                     lambda tmp: figure.savefig(tmp, format="png", dpi=120)))
        plt.close(figure)
    return written


def _counts(trials: list[Any]) -> str:
    states = Counter(trial.state.name for trial in trials)
    parts = [f"{states.pop('COMPLETE', 0)} complete", f"{states.pop('PRUNED', 0)} pruned",
             f"{states.pop('FAIL', 0)} failed"]
    retried = sum("retry_of" in trial.user_attrs for trial in trials)
    if retried:
        parts[-1] += f" ({retried} re-run after their worker died or was interrupted)"
    parts += [f"{count} {state.lower()}" for state, count in states.items()]  # RUNNING/WAITING: other workers
    return ", ".join(parts)


def write_results(study: Any, args: "SearchArgs", storage_display: str) -> None:
    trials = study.get_trials(deepcopy=False)
    say(f"study {args.study_name} ({storage_display}):", prefix="[search]")  # a long path wraps on its own line
    say(f"{len(trials)} trials: {_counts(trials)}", prefix="[search]")
    table = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "datetime_start",
                                          "duration"))
    written = [write_atomic(args.study_dir / "trials.csv", lambda tmp: table.to_csv(tmp, index=False))]
    if not _complete_trials(study):
        say("no complete trial yet: no best configuration", prefix="[search]")
        say(f"written: {written[0]}", prefix="[search]")
        return
    best = study.best_trial
    header = (f"# Best trial {best.number} of study {args.study_name}: validation {args.metric} {best.value:.4f}.\n"
              f"#   python main.py --config {args.study_dir / 'best_config.yaml'}\n")
    text = header + yaml.safe_dump(best_config(study, args), sort_keys=False)
    written.append(write_atomic(args.study_dir / "best_config.yaml", lambda tmp: tmp.write_text(text)))
    say(f"best: trial {best.number}, validation {args.metric} {best.value:.4f}: "
        f"{show_params(best.params)}", prefix="[search]")
    record_path = Path(best.user_attrs.get("output_dir", args.study_dir / f"trial-{best.number}")) / RESULT_NAME
    if record_path.is_file():
        record = RunRecord.load(record_path)
        test, task = record.metrics("test"), record.task
        say(f"best trial on test ({test['num_samples']} texts, never used to choose): {task.primary} "
            f"{test[task.primary]:.4f}, {task.secondary} {test.get(task.secondary, float('nan')):.4f}, loss "
            f"{test['loss']:.4f} ({record_path})", prefix="[search]")
    written += write_plots(study, args.img_dir, args.study_name, target_name=f"validation {args.metric}",
                           seed=args.sampler_seed)
    say(f"written: {', '.join(short_path(path) for path in written)}", prefix="[search]")


def _complete_trials(study: Any) -> list[Any]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
