"""Several processes of one run (`accelerate launch`, torchrun, `srun accelerate launch`): who does what.

Every process trains on its shard and takes part in the collective steps (gradient all-reduce, the gather in
evaluation); only the main process writes files and prints the summary. accelerate's PartialState holds the
process group; transformers' TrainingArguments re-creates it later with the same settings.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

import torch

if TYPE_CHECKING:
    from accelerate import PartialState

T = TypeVar("T")


def cpu_processes() -> bool:
    """True when a launcher started this process as one of several (it sets LOCAL_RANK) on a machine without CUDA.

    accelerate only forms a CPU (gloo) process group when asked for the CPU explicitly; otherwise each process
    silently trains alone on the whole data. `accelerate launch --cpu` cannot ask for it: it starts one process
    (or goes through mpirun), so CPU runs use `accelerate launch --multi_gpu --num_processes N` and we ask here.
    """
    return "LOCAL_RANK" in os.environ and not torch.cuda.is_available()


def process_state() -> "PartialState":
    """The run's PartialState, set up on first use (a plain `python main.py` gets a single-process one)."""
    from accelerate import PartialState

    return PartialState(cpu=cpu_processes())


def main_process_value(value: T) -> T:
    """The main process's value on every process: e.g. a default output directory named after the start time,
    which the processes would otherwise compute a second apart."""
    state = process_state()
    if state.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def largest(value: float) -> float:
    """The largest of one number over all processes (peak memory: the process that needed the most)."""
    if process_state().num_processes == 1:
        return value
    from accelerate.utils import gather_object

    return max(gather_object([value]))


def distributed_summary(per_device_batch_size: int, gradient_accumulation_steps: int) -> dict[str, Any]:
    """What the record says about the processes: world size, machines, backend, and the batch one optimizer step
    really saw (--batch_size is per process, as in the Trainer, so N processes take N times larger steps)."""
    state = process_state()
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", state.num_processes))
    return {
        "world_size": state.num_processes,
        "num_machines": max(1, state.num_processes // max(1, per_machine)),
        "distributed_type": str(state.distributed_type.value),
        "backend": state.backend,
        "global_train_batch_size": per_device_batch_size * gradient_accumulation_steps * state.num_processes,
    }
