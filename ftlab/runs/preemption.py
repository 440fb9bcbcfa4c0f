"""Stop a training run on request, so that a later attempt continues it to exactly the result it would have had.

A stop request is SIGUSR1 (SLURM's warning ahead of a time limit or preemption), SIGTERM (a scheduler's stop),
SIGINT (Ctrl-C), or the file named by $FTLAB_STOP_FILE appearing (how the SLURM templates pass the request on: see
scripts/slurm/common.sh). The run finishes the optimizer step it is in (and an evaluation or checkpoint save in
progress), writes the Trainer's own complete checkpoint at that step (weights or adapter, optimizer, scheduler,
RNG, data position), writes no record, and the command exits with exit_codes.INTERRUPTED. `--resume auto`
continues from that checkpoint.

With several processes every process asks the others at each step end (one all-reduce of a flag), so all stop
after the same step even when only one was signalled, and none waits alone in the next step's collectives.

transformers has `TrainingArguments(enable_jit_checkpoint=True)`, which falls short here: it listens to SIGTERM
only, acts 3 s later, saves on each process without agreeing on the step (a process signalled alone saves and
leaves the others blocked in the next gradient all-reduce), and then lets the run end as if finished (final
evaluation, record).
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Optional

from transformers import TrainerCallback

from ftlab.exit_codes import INTERRUPTED

if TYPE_CHECKING:
    from transformers import TrainerControl, TrainerState, TrainingArguments

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)
STOP_FILE_ENV = "FTLAB_STOP_FILE"

# Where a run is, for what a stop request means: before training there is nothing to save, during training the
# request is honoured at the next step end, after training the run is only evaluating and writing its record.
STARTING, TRAINING, FINISHING = "starting", "training", "finishing"


class TrainingInterrupted(BaseException):
    """The run stopped on request; `checkpoint` (None when training had not started) is complete and resumable.

    A BaseException, as KeyboardInterrupt is: it may be raised from a signal handler anywhere in library code, and
    the `except Exception` of a library (a hub probe, optuna's catch of failed trials) must not take it for an
    error and carry on."""

    def __init__(self, reason: str, step: Optional[int] = None, checkpoint: Optional[str] = None,
                 main_process: Optional[bool] = None):
        self.reason, self.step, self.checkpoint = reason, step, checkpoint
        # Before training there is no Trainer state to ask; the launchers' RANK says which process reports.
        self.main_process = os.environ.get("RANK", "0") == "0" if main_process is None else main_process
        where = f"after step {step}: checkpoint {checkpoint} is complete" if checkpoint else \
            "before training started: nothing to save"
        super().__init__(f"stopped by {reason} {where}")


def _say(message: str) -> None:
    # os.write, not print: a signal handler runs between two bytecodes of whatever the main thread does, and
    # print() from inside another print() to the same stream raises "reentrant call".
    os.write(2, f"[ftlab] {message}\n".encode())


class StopRequest:
    """The stop request of this process: set by a signal handler or by the stop file, read at step ends."""

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self.phase = STARTING

    def handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:
            if signum == signal.SIGINT:  # a second Ctrl-C: the user does not want to wait for the checkpoint
                raise KeyboardInterrupt
            return  # SLURM's SIGTERM after its warning signal, for example: already on the way out
        self.reason = name
        if self.phase == STARTING:
            raise TrainingInterrupted(name)
        if self.phase == TRAINING:
            _say(f"{name}: finishing the current step, then saving a checkpoint and exiting with code "
                 f"{INTERRUPTED} (Ctrl-C again to abort at once)")
        else:
            _say(f"{name}: training is complete; finishing the evaluation and writing the record "
                 f"(Ctrl-C again to abort at once)")

    def requested(self) -> Optional[str]:
        if self.reason is None:
            path = os.environ.get(STOP_FILE_ENV)
            if path and os.path.exists(path):
                self.reason = f"the stop file {path}"
        return self.reason


_active: Optional[StopRequest] = None


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Take SIGUSR1, SIGTERM and SIGINT as stop requests for the duration of the block (one training command)."""
    global _active
    request = StopRequest()
    previous = {}
    # Handlers can only be installed from the main thread (a run started in a worker thread keeps the stop file).
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, request.handle) for sig in STOP_SIGNALS}
    _active = request
    try:
        yield request
    finally:
        _active = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _agree(args: "TrainingArguments", local: bool) -> bool:
    """True on every process when any process wants to stop: one all-reduce of one integer per step, a negligible
    share of a training step (measured: docs/guide/resume.md, "Several processes"). On GPUs it adds no host
    synchronisation either: the Trainer's NaN filter already reads every step's loss on the host."""
    import torch
    import torch.distributed as dist

    if args.world_size <= 1 or not dist.is_initialized():
        return local
    flag = torch.tensor([int(local)], device=args.device, dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class StopOnRequest(TrainerCallback):
    """Turns an agreed stop request into a checkpoint at the current step followed by TrainingInterrupted.

    The request is checked at every step end, and after every evaluation and checkpoint save (a request that
    arrived while they ran is honoured as soon as they finish). A step that ends an epoch first gets its
    epoch-end evaluation, as in an uninterrupted run: the resumed run starts the next epoch and would never
    evaluate that one. The exception is raised from on_save, right after the Trainer wrote and rotated the
    checkpoint, so nothing of the end of training runs (best-model loading deletes other checkpoints).
    """

    def __init__(self, request: Optional[StopRequest] = None) -> None:
        self.request = request or _active or StopRequest()
        self.reason: Optional[str] = None  # the agreed request
        self._save_is_final = False  # the next checkpoint is the one to stop after
        self._epoch_end_pending = False  # this step ended an epoch whose evaluation has not run yet

    def _check(self, args: "TrainingArguments") -> bool:
        """Agree on a request (same call on every process, so the collectives line up)."""
        local = self.request.requested()
        if _agree(args, local is not None):
            self.reason = local or "a stop request on another process"
            return True
        return False

    def on_train_begin(self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl",
                       **kwargs: Any) -> None:
        self.request.phase = TRAINING

    def on_step_end(self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl",
                    **kwargs: Any) -> None:
        self._epoch_end_pending = float(state.epoch or 0).is_integer() or state.global_step >= state.max_steps
        if self.reason is not None or not self._check(args):
            return
        if state.is_world_process_zero:
            _say(f"stop requested ({self.reason}): saving a checkpoint after step {state.global_step}")
        if not self._epoch_end_pending:
            self._stop_here(control)

    def on_epoch_end(self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl",
                     **kwargs: Any) -> None:
        self._epoch_end_pending = False
        if self.reason is not None:
            self._stop_here(control)

    def on_evaluate(self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl",
                    **kwargs: Any) -> None:
        if self.reason is None and self._check(args) and not self._epoch_end_pending:
            self._stop_here(control)

    def on_save(self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl",
                **kwargs: Any) -> None:
        if self.reason is None and self._check(args) and not self._epoch_end_pending:
            self._save_is_final = True  # the checkpoint just written is the state at this step
        if self._save_is_final:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            # Every process has written its part (its RNG state) before any exits: a launcher stops the others as
            # soon as one process ends.
            _agree(args, True)
            checkpoint = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            raise TrainingInterrupted(self.reason or "a stop request", state.global_step, checkpoint,
                                      main_process=state.is_world_process_zero)

    def on_train_end(self, args: "TrainingArguments", state: "TrainerState", control: "TrainerControl",
                     **kwargs: Any) -> None:
        self.request.phase = FINISHING

    def _stop_here(self, control: "TrainerControl") -> None:
        # Log the loss of the steps since the last logging step: the Trainer does not checkpoint its running sum,
        # so without this they would be missing from the resumed run's loss history.
        control.should_log = True
        control.should_save = True
        self._save_is_final = True
