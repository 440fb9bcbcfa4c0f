"""The study of `main.py search` (ftlab.commands.search): an Optuna study over train flags, in which every trial is
an ordinary run.

The study lives in a storage (a SQLite file in the study directory unless --storage names another); any number of
workers (processes, machines, SLURM array tasks) running the same command share it. The worker that finds fewer
than N trials in the study queues the missing ones (empty trials: the sampler draws their values when they start);
every worker then takes queued trials until none is left. So together they run exactly N, none twice. A worker
that dies mid-trial stops sending heartbeats: after --grace_period another worker marks that trial FAIL and queues
it again with the same values, and workers with nothing left to start wait for such trials before they stop.

Trials are chosen on their final validation --metric_for_best only; the test split is reported for the best one.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional

from ftlab import tasks
from ftlab.config import FIELDS
from ftlab.console import say
from ftlab.errors import ConfigError
from ftlab.runs.record import RESULT_NAME
from ftlab.search.args import SearchArgs

if TYPE_CHECKING:  # ftlab.runs.preemption imports transformers: loaded only once the flags are known to be good
    from ftlab.runs.preemption import StopRequest

# Train flags two workers of one study may differ in: where it writes, what it prints and keeps on disk.
NOT_COMPARED = ("output_dir", "overwrite_output_dir", "verbose", "keep_checkpoints")
# A worker with nothing left to start looks this often whether the others' trials have ended or gone stale.
WAIT_POLL_SECONDS = 5


def fixed_settings(args: SearchArgs) -> dict[str, Any]:
    """What every worker and every continuation of a study must share: the space and the fixed train values
    (tracking and the output directory excepted: they do not change what a trial measures)."""
    fixed = {name: getattr(getattr(args.base, group), name) for name, (group, _) in FIELDS.items()
             if group != "tracking" and name not in args.space and name not in NOT_COMPARED}
    settings = {"space": {name: param.describe() for name, param in args.space.items()}, "train": fixed}
    if args.trial_seeds:
        settings["trial_seeds"] = list(args.trial_seeds)
    return settings


def _difference(stored: dict[str, Any], ours: dict[str, Any]) -> str:
    if stored["space"] != ours["space"]:
        return (f"it searches {', '.join(stored['space'].values())}; this command searches "
                f"{', '.join(ours['space'].values())}")
    name = next(key for key in sorted({*stored["train"], *ours["train"]})
                if stored["train"].get(key) != ours["train"].get(key))
    return f"it has --{name} {stored['train'].get(name)}; this command has --{name} {ours['train'].get(name)}"


def _original(trial: Any) -> bool:
    """A queued trial, not a re-run of one whose worker died (those replace their original, they add nothing)."""
    import optuna

    return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is None


def open_study(args: SearchArgs, storage: Any) -> Any:
    """Create or join the study, check that it is this command's, and queue the trials it lacks, all under the
    queue lock (so two workers starting together neither both create nor both top up)."""
    import optuna

    direction = "maximize" if tasks.better_larger(args.metric) else "minimize"
    ours = fixed_settings(args)
    with storage.lock:
        study = optuna.create_study(storage=storage.optuna, study_name=args.study_name, direction=direction,
                                    load_if_exists=True)
        stored = study.user_attrs.get("ftlab")
        trials = study.get_trials(deepcopy=False)
        if stored is None and trials:
            raise ConfigError(f"study {args.study_name} in {storage.display} was not made by ftlab search; "
                              f"choose another --study_name")
        if stored is None:
            leftover = sorted(args.study_dir.glob(f"trial-*/{RESULT_NAME}"))
            if leftover:
                raise ConfigError(f"{args.study_dir} holds trials of another study ({leftover[0]}, ...) but "
                                  f"{args.study_name} in {storage.display} is new: choose another --output_dir, or "
                                  f"the storage that study lives in")
            study.set_user_attr("ftlab", ours)
        elif stored != ours:
            raise ConfigError(f"study {args.study_name} in {storage.display} was started with other settings: "
                              f"{_difference(stored, ours)}. Run the same command, or use another --output_dir "
                              f"or --study_name")
        originals = sum(_original(trial) for trial in trials)
        if args.n_trials < originals:
            raise ConfigError(f"--n_trials {args.n_trials}: study {args.study_name} already has {originals} trials; "
                              f"ask for at least that many")
        for index in range(args.n_trials - originals):
            # The first trial of a new study may be given (a method's registry default), the others are drawn.
            first = args.first_trial if index == 0 and originals == 0 else None
            study.enqueue_trial(first or {})
        # Workers of one study draw from differently seeded samplers (the same seed would give the same values
        # to trials started side by side); the first worker of a study uses --sampler_seed itself.
        worker_index = study.user_attrs.get("ftlab_workers", 0)
        study.set_user_attr("ftlab_workers", worker_index + 1)
    pruner = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
              "halving": optuna.pruners.SuccessiveHalvingPruner, "none": optuna.pruners.NopPruner}[args.pruner]()
    # constant_liar: trials still running count as bad results, so concurrent workers spread out.
    sampler = optuna.samplers.TPESampler(seed=args.sampler_seed + worker_index, constant_liar=True)
    return optuna.load_study(study_name=args.study_name, storage=storage.optuna, sampler=sampler, pruner=pruner)


def run_worker(study: Any, args: SearchArgs, storage: Any, stop: Optional[StopRequest] = None) -> None:
    """Take queued trials until none is left; then, where heartbeats tell dead workers apart, wait while other
    workers' trials run: a trial whose worker dies is queued again, and this worker runs it. A stop request
    (`stop`, see ftlab.runs.preemption) ends the trial in progress at its next step and queues it again; none is
    started after one."""
    import optuna
    from optuna.trial import TrialState

    from ftlab.runs.preemption import TrainingInterrupted

    runner = None
    waiting_said = False
    while True:
        if stop is not None and stop.requested():
            raise TrainingInterrupted(stop.requested() or "a stop request")
        if runner is None and study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            runner = _trial_runner(args, storage)  # torch and co. load now, not while holding the queue lock
        storage.lock.acquire()
        try:
            optuna.storages.fail_stale_trials(study)  # dead workers' trials -> FAIL, and queued again
            states = Counter(trial.state for trial in study.get_trials(
                deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))
            if states[TrialState.WAITING]:
                if runner is None:
                    continue  # queued just now: load the trial code first, outside the lock
                # Under the lock, ask() inside optimize() takes a queued trial and never creates one; the trial
                # (TrialRunner) releases the lock as soon as it starts. Trial errors fail that trial, not the worker.
                try:
                    study.optimize(runner, n_trials=1, catch=(Exception,), gc_after_trial=True)
                except optuna.exceptions.UpdateFinishedTrialError:
                    # This worker stalled longer than --grace_period (alive, but silent): another one already
                    # failed its trial and queued it again. Its run directory stays; the study re-runs it.
                    say(f"trial {runner.current} was taken for dead while it ran (no heartbeat for the "
                        f"grace period) and is re-run; raise --grace_period", prefix="[search]", file=sys.stderr)
                runner.current = None
                waiting_said = False
                continue
        except (KeyboardInterrupt, TrainingInterrupted):
            _requeue_interrupted(study, runner.current if runner else None)
            raise
        finally:
            storage.lock.release()
        if not (storage.heartbeats and states[TrialState.RUNNING]):
            return
        if not waiting_said:
            say(f"no trial left to start; waiting for {states[TrialState.RUNNING]} running trial(s) of "
                f"other workers (one whose worker died is re-queued after its grace period)", prefix="[search]")
            waiting_said = True
        time.sleep(min(WAIT_POLL_SECONDS, storage.heartbeat_interval))


def _trial_runner(args: SearchArgs, storage: Any) -> Any:
    from ftlab.search.trial import TrialRunner

    return TrialRunner(train_argv=args.train_argv, space=args.space, study_dir=args.study_dir,
                       study_name=args.study_name, metric=args.metric, storage_display=storage.display,
                       release_queue=storage.lock.release,
                       wandb_group=None if args.base.tracking.wandb_group else args.study_name,
                       seeds=args.trial_seeds)


def _requeue_interrupted(study: Any, number: Optional[int]) -> None:
    """Ctrl-C or a stop request: the interrupted trial is failed and queued again, so that re-running the command
    (or the requeued SLURM task) runs it, afresh: trials are short next to a search, and never resumed."""
    import optuna
    from optuna.trial import TrialState

    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is not None and trial.state == TrialState.RUNNING:
        # Optuna fails a trial on Exception and KeyboardInterrupt, but a stop (TrainingInterrupted) passes through.
        study.tell(number, state=TrialState.FAIL)
        trial = study.get_trials(deepcopy=False)[number]
    if trial is not None and trial.state == TrialState.FAIL:
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, trial)
        say(f"trial {number} interrupted; queued again for the next run of this command", prefix="[search]")
