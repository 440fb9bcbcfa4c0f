"""Process-level settings made once, before the libraries load: memory tuning, library noise, the plotting backend."""
from __future__ import annotations

import ctypes
import logging
import os
import sys
import warnings
from typing import Any, Optional

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_glibc_malloc() -> bool:
    """Keep freed activation buffers in the heap instead of returning them to the OS after every step.

    glibc serves large blocks with mmap and unmaps them on free, so each training step page-faults its
    activations in again, and on a CPU that kernel time is a large share of a step (measured: docs/studies/speed.md,
    "Older settings"). No effect off glibc/Linux.
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


def quiet_library_noise(four_bit: bool = False) -> None:
    """Silence library output that a user of this harness cannot act on (each item seen in a default CPU run);
    `four_bit`: whether this process trains on a 4-bit base.

    - peft 0.21 reads PreTrainedModel.is_gradient_checkpointing inside get_peft_model, which transformers 5
      deprecates with a FutureWarning: their mismatch, not a call of ours.
    - bitsandbytes (imported by peft) says on AVX512-BF16 CPUs that its fast 4-bit CPU kernel needs the `kernels`
      package (which fetches the kernel from the hub): only 4-bit bases use 4-bit kernels, so only they see it.
    - datasets' JSON reader logs its parse error before raising it; ftlab reports the raised one, with the line.
    - Progress bars off a terminal (a log file, a pipe) are lines of carriage returns, so they are off there, as
      the Trainer's own is (training/trainer.py, disable_tqdm).
    """
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if not four_bit:
        logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    logging.getLogger("datasets.packaged_modules.json.json").setLevel(logging.CRITICAL)
    if not sys.stderr.isatty():
        # Read when the libraries are imported; a process that imported them already (tests) is told directly.
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
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
