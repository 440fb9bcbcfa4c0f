"""The fast path's settings for the Trainer (precision, sampling, workers, compilation) and step timing.

Measured on an H100 (FACTS.md): the tutorial recipe (pad to 512, fp32, random batches) keeps the GPU ~1% busy;
bf16, TF32, length-grouped batches padded to a small multiple and data workers are what the Trainer itself can
do about it, and compiling needs static shapes, hence buckets.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import torch
from transformers import TrainerCallback

from ftlab.config import Config
from ftlab.errors import ConfigError

# Steps at the start left out of steady-state throughput: CUDA context and kernel selection, compilation of the
# first buckets. At least one step, at most a tenth of the run.
WARMUP_SHARE = 0.1


def resolve_precision(requested: str) -> str:
    """auto: bf16 on GPUs with bf16 units, fp16 on older GPUs, fp32 on CPU (bf16 autocast measured 10x slower on
    this project's EPYC CPUs, which lack bf16 units)."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and not cuda:
        raise ConfigError("--precision fp16: mixed precision with fp16 needs a CUDA GPU; use fp32 or bf16 on CPU")
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU has no bf16 support; use fp16 or auto")
    return requested


def speed_arguments(cfg: Config) -> dict[str, Any]:
    """TrainingArguments for the fast path (or for the reference recipe, when the config asks for it)."""
    cuda = torch.cuda.is_available()
    precision = resolve_precision(cfg.speed.precision)
    grouped = cfg.speed.group_by_length and not cfg.data.pad_to_max_length
    workers = cfg.speed.dataloader_num_workers
    if workers is None:
        workers = 4 if cuda else 0
    args: dict[str, Any] = {
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        # TF32 matmuls for whatever stays in fp32 (Ampere and newer only).
        "tf32": cuda and torch.cuda.get_device_capability()[0] >= 8,
        "train_sampling_strategy": "group_by_length" if grouped else "random",
        "dataloader_num_workers": workers,
        "dataloader_persistent_workers": workers > 0,  # no re-spawn of the workers every epoch
        # Page-locked batches only help copies to a GPU; without one torch warns on every DataLoader.
        "dataloader_pin_memory": cuda,
    }
    if cfg.speed.torch_compile:
        # Not dataloader_drop_last: the Trainer applies it to evaluation too, which would skip samples.
        args.update(torch_compile=True, torch_compile_backend=cfg.speed.torch_compile_backend)
    return args


def configure_compile(cfg: Config) -> None:
    """Compile one static graph per (batch size, bucket) instead of letting dynamo switch to dynamic shapes after
    the second length it sees (which is slower for these small encoders) or give up at its cache limit."""
    if not cfg.speed.torch_compile:
        return
    import torch._dynamo

    buckets = -(-cfg.data.max_length // cfg.speed.pad_multiple)
    torch._dynamo.config.automatic_dynamic_shapes = False
    # Train and eval batch sizes and their partial last batches, for every bucket.
    limit = 4 * buckets
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, limit)
    torch._dynamo.config.accumulated_cache_size_limit = max(torch._dynamo.config.accumulated_cache_size_limit, limit)


class StepTimer(TrainerCallback):
    """Wall time between optimizer steps, without the steps that also evaluated or saved, so throughput can leave
    out the warm-up and the bookkeeping."""

    def __init__(self) -> None:
        self.intervals: list[float] = []
        self._last: Optional[float] = None
        self._interrupted = False

    def _now(self) -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # kernels are asynchronous: time what ran, not what was queued
        return time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last = self._now()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = self._now()
        if self._last is not None and not self._interrupted:
            self.intervals.append(now - self._last)
        self._last = now
        self._interrupted = False

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._interrupted = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._interrupted = True

    def steady_step_seconds(self) -> Optional[float]:
        """Mean step time after the warm-up steps; None when the run was too short to have any."""
        skip = max(1, int(len(self.intervals) * WARMUP_SHARE))
        steady = self.intervals[skip:]
        return sum(steady) / len(steady) if steady else None
