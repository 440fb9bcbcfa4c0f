"""One trial of `main.py search`: an ordinary training run (its own directory, result.json, a line in the study's
index.jsonl) whose config is the study's fixed train flags plus the values the sampler drew for this trial.

The pruning hook is a TrainerCallback: transformers' own Optuna hook lives inside Trainer.hyperparameter_search,
which builds its own model per trial and knows nothing of this harness's runs, and optuna-integration has no
Trainer callback. So the callback reports each intermediate validation figure to the trial and stops training when
the pruner says so.
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import optuna
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ftlab.config import Config
from ftlab.console import say
from ftlab.runs.plan import plan_run
from ftlab.search.space import Param, param_flags, show_params
from ftlab.training.run import run_training  # heavy (torch): imported once, before the worker takes its first trial

# Without --eval_steps a trial is evaluated on validation at these shares of its optimizer steps, so the pruner
# has a few points to compare (the final model is evaluated after training in any case).
AUTO_EVAL_FRACTIONS = (0.25, 0.5, 0.75)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class TrialReporter(TrainerCallback):
    """Reports validation `metric` at every evaluation to the Optuna trial; stops training when it should be
    pruned. `info` is the record's `search` field: its `state` says PRUNED (or FAIL) by the time it is written."""

    def __init__(self, trial: optuna.Trial, metric: str, info: dict[str, Any],
                 eval_fractions: tuple[float, ...] = ()):
        self.trial, self.key, self.info, self.eval_fractions = trial, f"eval_{metric}", info, eval_fractions
        self.eval_at: set[int] = set()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.eval_at = {max(1, round(state.max_steps * share)) for share in self.eval_fractions} - {state.max_steps}

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if state.global_step in self.eval_at:
            control.should_evaluate = True

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: Optional[dict[str, float]] = None, **kwargs: Any) -> None:
        value = (metrics or {}).get(self.key)
        if value is None:
            return
        self.trial.report(value, state.global_step)
        if self.trial.should_prune():
            self.info.update(state="PRUNED", pruned_at_step=state.global_step)
            control.should_training_stop = True

    def on_predict(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                   metrics: Optional[dict[str, float]] = None, **kwargs: Any) -> None:
        # The final validation figure is the objective; Optuna fails a trial whose objective is NaN.
        value = (metrics or {}).get(self.key)
        if value is not None and not math.isfinite(value):
            self.info["state"] = "FAIL"


class TrialRunner:
    """The objective handed to study.optimize: one trial = one training run, returning validation `metric`."""

    def __init__(self, *, train_argv: list[str], space: dict[str, Param], study_dir: Path, study_name: str,
                 metric: str, storage_display: str, release_queue: Callable[[], None], wandb_group: Optional[str],
                 seeds: tuple[int, ...] = ()):
        self.train_argv, self.space, self.study_dir, self.study_name = train_argv, space, study_dir, study_name
        self.metric, self.storage_display, self.release_queue = metric, storage_display, release_queue
        self.wandb_group, self.seeds = wandb_group, seeds
        self.current: Optional[int] = None  # number of the trial in progress (to re-queue it on Ctrl-C)

    def trial_config(self, params: dict[str, Any], output_dir: Path, seed: Optional[int] = None) -> Config:
        argv = [*self.train_argv, *param_flags(params), "--output_dir", str(output_dir)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if self.wandb_group:
            argv += ["--wandb_group", self.wandb_group]
        return plan_run(argv)

    def __call__(self, trial: optuna.Trial) -> float:
        self.release_queue()  # this trial is ours now: the other workers may take the next one
        self.current = trial.number
        params = {name: param.suggest(trial) for name, param in self.space.items()}
        output_dir = self.study_dir / f"trial-{trial.number}"
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        retry_of = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        trial.set_user_attr("output_dir", str(output_dir))
        trial.set_user_attr("worker", worker_name())
        if retry_of is not None:
            trial.set_user_attr("retry_of", retry_of)
        say(f"trial {trial.number}{f' (retry of trial {retry_of})' if retry_of is not None else ''}: "
            f"{show_params(params)}", prefix="[search]")
        info = {"study": self.study_name, "storage": self.storage_display, "trial": trial.number,
                "state": "COMPLETE", "params": params, "objective": f"validation {self.metric}",
                "retry_of": retry_of, "worker": worker_name()}
        try:
            value = self._run(trial, params, output_dir, info)
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            say(f"trial {trial.number} failed: {type(exc).__name__}: {exc}", prefix="[search]", file=sys.stderr)
            raise
        finally:
            # A trial is never resumed (a retried one starts afresh in its own directory): its checkpoints are
            # only disk. The record and config stay; retrain the best configuration to keep a model.
            for checkpoint in output_dir.rglob("checkpoint-*"):
                shutil.rmtree(checkpoint, ignore_errors=True)
        if info["state"] == "PRUNED":
            say(f"trial {trial.number} pruned at step {info['pruned_at_step']}", prefix="[search]")
            raise optuna.TrialPruned(f"pruned at step {info['pruned_at_step']}")
        say(f"trial {trial.number} done: validation {self.metric} {value:.4f}", prefix="[search]")
        return value

    def _run(self, trial: optuna.Trial, params: dict[str, Any], output_dir: Path, info: dict[str, Any]) -> float:
        """The trial's runs, one per trial seed (in <trial>/seed<N>) or one; its objective is their mean validation
        metric. Only the first seed's run reports to the pruner: the seeds' intermediate figures would interleave."""
        values = []
        sweep = {"command": "search", "dir": str(self.study_dir)}  # a report around the study leaves it out
        for index, seed in enumerate(self.seeds or (None,)):
            cfg = self.trial_config(params, output_dir / f"seed{seed}" if seed is not None else output_dir, seed)
            callbacks = [] if index else [TrialReporter(trial, self.metric, info, eval_fractions=(
                () if cfg.run.eval_steps else AUTO_EVAL_FRACTIONS))]
            record = run_training(cfg, callbacks=callbacks, extra={"search": info, "sweep": sweep})
            values.append(record["metrics"]["validation"][self.metric])
            if info["state"] != "COMPLETE":
                break
        if len(values) > 1:
            info["seed_values"] = values
        return sum(values) / len(values)
