"""The tasks of `main.py compare` (ftlab.commands.compare), each made of ordinary runs:

- tune <method>: the method's Optuna study over its learning rate (and --tune's hyperparameters), one ordinary run
  per trial and trial seed, through the search machinery (ftlab.search): SQLite in <output_dir>/tune/<method> or
  --storage, heartbeats, pruning from intermediate validations, several workers per study. The first trial is the
  registry's default. Trials are scored on validation only.
- confirm <method> seed N: the study's best configuration re-run on a fresh seed and scored on test.
- default <method> seed N: the method at its registry default on the same seed, for the table beside; read from
  --reuse where a finished run of the same configuration and seed exists.
Running the command again skips what is finished and continues what is not (a study keeps its trials; an
interrupted run resumes from its checkpoint)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ftlab.compare.args import CompareArgs, Task
from ftlab.console import say
from ftlab.errors import ConfigError
from ftlab.runs.plan import plan_run
from ftlab.runs.record import RESULT_NAME, RunRecord, has_record, read_json_file
from ftlab.search.space import param_flags

REUSED = "reused.json"  # in a default run's directory: the finished run read in its place


def open_method_study(args: CompareArgs, method: str) -> tuple[Any, Any, Any]:
    """(search args, storage, study) of the method's tuning study, created or joined."""
    from ftlab.search.storage import open_storage
    from ftlab.search.study import open_study

    search = args.search_args(method)
    storage = open_storage(args.storage, search.study_dir, search.study_name, args.heartbeat_interval,
                           args.grace_period)
    return search, storage, open_study(search, storage)


def tune(args: CompareArgs, method: str, stop: Any) -> None:
    from ftlab.search.results import write_results
    from ftlab.search.study import run_worker

    search, storage, study = open_method_study(args, method)
    say(f"tuning {method}: {args.trials} trials in {search.study_dir}", prefix="[compare]")
    run_worker(study, search, storage, stop)
    write_results(study, search, storage.display)


def best_params(args: CompareArgs, method: str) -> dict[str, Any]:
    """The best trial's values, once every trial of the study has ended; else one line saying so."""
    from optuna.trial import TrialState

    _, _, study = open_method_study(args, method)
    ended = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    complete = [t for t in ended if t.state == TrialState.COMPLETE]
    if len(ended) < args.trials or not complete:
        raise ConfigError(f"compare: the study of {method} has {len(ended)} of {args.trials} trials finished "
                          f"({len(complete)} complete): run its tuning task first (--list_tasks)")
    return dict(study.best_trial.params)


def reusable(args: CompareArgs, run_argv: list[str], seed: int) -> Optional[Path]:
    """A finished run under --reuse, or among this comparison's confirmation runs (the best configuration may be the
    default one), with this run's configuration group and seed."""
    from ftlab.analysis.records import load_records
    from ftlab.config import group_id
    from ftlab.training.speed import resolve_precision

    cfg = plan_run(run_argv)
    group = group_id(cfg, cfg.method.method, resolve_precision(cfg.speed.precision))
    for directory in [args.output_dir / "confirm", *args.reuse]:
        for record in load_records(directory) if directory.is_dir() else ():
            if record.group == group and record.seed == seed:
                return record.directory
    return None


def run_seed(args: CompareArgs, task: Task) -> None:
    """One confirmation or default run, as an ordinary run: skipped when finished (or reused), continued when
    interrupted."""
    out = args.run_dir(task.stage, task.method, task.seed)
    if has_record(out) or (out / REUSED).is_file():
        say(f"{task.name}: finished before, skipped", prefix="[compare]")
        return
    params = best_params(args, task.method) if task.stage == "confirm" else {}
    argv = [*args.method_argv(task.method), *param_flags(params), "--seed", str(task.seed)]
    if task.stage == "default":
        found = reusable(args, argv, task.seed)
        if found is not None:
            from ftlab.runs.directory import write_json_atomic

            write_json_atomic(out / REUSED, {"record": str(found / RESULT_NAME)})
            say(f"{task.name}: reused {found}", prefix="[compare]")
            return
    from ftlab.training.run import run_training

    cfg = plan_run([*argv, "--output_dir", str(out), "--resume", "auto"])
    say(f"{task.name}" + (f": {', '.join(f'{k}={v:.4g}' for k, v in params.items())}" if params else ""),
        prefix="[compare]")
    run_training(cfg, extra={"sweep": {"command": "compare", "dir": str(args.output_dir)},
                             "compare": {"stage": task.stage, "method": task.method, "params": params}})


def run_task(args: CompareArgs, task: Task, stop: Any) -> None:
    if task.stage == "tune":
        tune(args, task.method, stop)
    else:
        run_seed(args, task)


def stage_records(args: CompareArgs, stage: str, method: str) -> list[RunRecord]:
    """The finished confirmation or default runs of a method (a reused run read from where it lies)."""
    records = []
    for seed in args.seeds:
        out = args.run_dir(stage, method, seed)
        if (out / REUSED).is_file():
            records.append(RunRecord.load(Path(read_json_file(out / REUSED)["record"])))
        elif has_record(out):
            records.append(RunRecord.load(out / RESULT_NAME))
    return records
