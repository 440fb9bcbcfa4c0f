"""Process-level settings made once, before the libraries load: memory tuning, library noise, the plotting backend;
and what the machine has, read without torch."""
from __future__ import annotations

import ctypes
import glob
import logging
import os
import sys
import warnings
from typing import Any, Optional

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_glibc_malloc() -> bool:
    """Keep freed activation buffers in the heap instead of returning them to the OS after every step.

    glibc serves large blocks with mmap and unmaps them on free, so each training step page-faults its
    activations in again: measured here, 15 s of a 38 s CPU benchmark was kernel time, and these three settings
    made LoRA training 19% faster (3.32 -> 3.94 samples/s, MiniLM, 256 tokens). No effect off glibc/Linux.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl and other libcs: nothing to tune
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, 32 * 2**20),  # glibc's maximum on 64-bit
        (_M_TRIM_THRESHOLD, 2**30),
        (_M_TOP_PAD, 256 * 2**20),
    ))


def gpu_present() -> bool:
    """Whether the system shows a GPU that torch could use (NVIDIA's device nodes or driver entries, ROCm's kfd)
    and CUDA_VISIBLE_DEVICES does not hide it: the question asked of torch.cuda.is_available(), answered without
    importing torch (seconds), so that a flag needing a GPU is refused with the other flags."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/proc/driver/nvidia/gpus/*") or os.path.exists("/dev/kfd"))


def hide_wandb_settings() -> None:
    """W&B is off for this process: its environment switches go, because transformers acts on them on import
    (WANDB_MODE=offline, which cluster templates export, prints "Running in WANDB offline mode" though nothing is
    logged)."""
    os.environ.pop("WANDB_MODE", None)


def quiet_library_noise(four_bit: bool = False, verbose: bool = False) -> None:
    """Silence library output that a user of this harness cannot act on (each item seen in a default CPU run);
    `four_bit`: whether this process trains on a 4-bit base. `verbose` keeps all of it.

    - peft 0.21 reads PreTrainedModel.is_gradient_checkpointing inside get_peft_model, which transformers 5
      deprecates with a FutureWarning: their mismatch, not a call of ours.
    - bitsandbytes (imported by peft) says on AVX512-BF16 CPUs that its fast 4-bit CPU kernel needs the `kernels`
      package (which fetches the kernel from the hub), and `kernels` (which transformers 5.25 installs), asked
      for it offline, that it skips the publisher's trust check: only 4-bit bases use 4-bit kernels, so only they
      see either.
    - datasets' JSON and CSV readers log their parse error before raising it; ftlab reports the raised one.
    - transformers' bars for loading and writing weights (seconds, even on a terminal), and its notice that file
      times are unreliable when it rotates checkpoints (it then orders them by number, which is what we want).
    - Progress bars off a terminal (a log file, a pipe) are lines of carriage returns, so they are off there, as
      the Trainer's own is (training/trainer.py, disable_tqdm).
    """
    for logger in ("bitsandbytes.backends.cpu.ops", "kernels"):
        # Set either way: a process that runs more than one job (tests, notebooks) may go from one kind to another.
        logging.getLogger(logger).setLevel(logging.NOTSET if four_bit or verbose else logging.ERROR)
    if verbose:
        return
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    for reader in ("json", "csv"):
        logging.getLogger(f"datasets.packaged_modules.{reader}.{reader}").setLevel(logging.CRITICAL)
    logging.getLogger("transformers.trainer_utils").addFilter(
        lambda record: "mtime may not be reliable" not in record.getMessage())
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight bars read it on import
    if not sys.stderr.isatty():
        # Read when the libraries are imported; a process that imported them already (tests) is told directly.
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend: every plot of the package goes to a file, which works on headless
    nodes and never opens a window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
