"""Process-level tuning that must happen before the first large tensor is allocated."""
from __future__ import annotations

import ctypes
import sys

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
