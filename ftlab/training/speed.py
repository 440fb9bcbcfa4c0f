"""The fast path's settings for the Trainer (precision, sampling, workers, compilation) and step timing.

The tutorial recipe (pad to --max_length, fp32, random batches) leaves a GPU mostly idle; bf16, TF32,
length-grouped batches padded to a small multiple and data workers, which the Trainer itself can do, keep it far
busier. Compiling needs static shapes, hence buckets: torch.compile on dynamically padded batches recompiles per
shape. The figures: docs/studies/speed.md ("Anchors on a GPU").
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ftlab.config import Config
from ftlab.distributed import cpu_processes
from ftlab.errors import ConfigError
from ftlab.models.architectures import HALF_PRECISION_FAILS

# Steps at the start left out of steady-state throughput: CUDA context and kernel selection, compilation of the
# first buckets. At least one step, at most a tenth of the run.
WARMUP_SHARE = 0.1
PROFILE_NAME = "profile.txt"


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AVX512-BF16 or AMX-BF16), where oneDNN runs bf16 GEMMs several times
    faster than fp32; without them bf16 is emulated and far slower (docs/studies/speed.md)."""
    capabilities = getattr(torch.cpu, "get_capabilities", lambda: {})()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def resolve_precision(requested: str) -> str:
    """auto: bf16 on GPUs with bf16 units, fp16 on older GPUs; on CPUs bf16 where they have bf16 units, else fp32."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if not cuda:
            return "bf16" if cpu_has_bf16() else "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and not cuda:
        raise ConfigError("--precision fp16: mixed precision with fp16 needs a CUDA GPU; use fp32 or bf16 on CPU")
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU has no bf16 support; use fp16 or auto")
    return requested


def family_precision(precision: str, requested: str, model_type: str) -> tuple[str, Optional[str]]:
    """The precision a model family trains in, and why where it is not `precision` (what --precision `requested`
    resolved to on this device): a family that cannot run in half precision (HALF_PRECISION_FAILS) trains in fp32
    under auto; bf16 or fp16 asked for by name is refused."""
    fails = HALF_PRECISION_FAILS.get(model_type)
    if fails is None or precision == "fp32":
        return precision, None
    if requested != "auto":
        raise ConfigError(f"--precision {requested}: {model_type} {fails}; use --precision fp32 or auto")
    return "fp32", f"{model_type} {fails}: fp32 instead of {precision}"


def resolve_dropout(requested: Optional[float]) -> Optional[float]:
    """The attention-probability or hidden-state dropout to train with: the one requested, else 0 on CPUs and
    None (the model's own) on GPUs.

    Attention: on CPUs, scaled_dot_product_attention has a fused (flash) kernel only without dropout; with the
    model's 0.1 it falls back to the unfused math path (a T x T softmax, its dropout mask and two batched matmuls,
    all kept for backward). Hidden states: on CPUs drawing the masks (bernoulli_) is a sizeable share of a step on
    its own, and applying them is more passes over the activations, for no accuracy that `make run` could measure.
    Both measured in docs/studies/speed.md and docs/studies/cpu-defaults.md.
    GPU kernels fuse dropout and draw masks in parallel, so there the model's own values stay.
    """
    if requested is not None or torch.cuda.is_available():
        return requested
    return 0.0


def speed_arguments(cfg: Config, precision: str) -> dict[str, Any]:
    """TrainingArguments for the fast path (or for the reference recipe, when the config asks for it), at the
    `precision` the run resolved --precision to (resolve_precision, once per run)."""
    cuda = torch.cuda.is_available()
    grouped = cfg.speed.group_by_length and not cfg.data.pad_to_max_length
    workers = cfg.speed.dataloader_num_workers
    if workers is None:
        workers = 4 if cuda else 0
    args: dict[str, Any] = {
        # Several processes on a machine without CUDA: train together over gloo instead of each one alone. And the
        # Trainer refuses bf16 without a GPU unless told that the CPU is meant.
        "use_cpu": cpu_processes() or (not cuda and precision == "bf16"),
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
    if cfg.speed.gradient_checkpointing:
        # Non-reentrant: the reentrant variant gives no gradient to LoRA's adapters when the block's input does not
        # require one (frozen embeddings).
        args.update(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})
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


class TrainingClock(TrainerCallback, ExportableState):
    """Training seconds of a run across its attempts: the seconds of the earlier attempts up to the checkpoint this
    one continued, plus this attempt's. Without it a resumed run would report only its last attempt's time, and a
    preempted point of a learning curve would look cheaper than it was. The count travels in each checkpoint's
    trainer_state.json through the Trainer's own stateful-callback mechanism (`restore_callback_states_from_
    checkpoint`); work done after the last checkpoint of an interrupted attempt is lost and not counted."""

    def __init__(self) -> None:
        self.seconds_before = 0.0  # restored by the Trainer when it resumes
        self._started: Optional[float] = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def seconds(self) -> float:
        return self.seconds_before + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def state(self) -> dict[str, Any]:
        return {"args": {}, "attributes": {"seconds_before": self.seconds()}}


class ProfileSteps(TrainerCallback):
    """torch.profiler over `steps` optimizer steps after the warm-up share of the run (--profile_steps), written as
    a table of the operators that took the time: the evidence behind the fast path's choices (docs/studies/speed.md)."""

    def __init__(self, steps: int, path: Path) -> None:
        self.steps = steps
        self.path = path
        self.first = 0
        self.profiler: Optional[torch.profiler.profile] = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.first = state.global_step + max(1, int((state.max_steps - state.global_step) * WARMUP_SHARE))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.first and self.profiler is None:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.__enter__()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.profiler is not None and state.global_step >= self.first + self.steps:
            self._write(state.global_step - self.first)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.profiler is not None:  # the run ended before the last profiled step
            self._write(state.global_step - self.first)

    def _write(self, steps: int) -> None:
        profiler, self.profiler = self.profiler, None
        profiler.__exit__(None, None, None)
        sort = "self_cuda_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
        table = profiler.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=60)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"torch.profiler: {steps} optimizer steps from step {self.first + 1}, sorted by "
                             f"{sort}\n{table}\n", encoding="utf-8")

