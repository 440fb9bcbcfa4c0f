"""Build the Hugging Face Trainer for a run, train, and evaluate every split."""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from transformers import (EarlyStoppingCallback, PreTrainedTokenizerBase, PrinterCallback, ProgressCallback, Trainer,
                          TrainerCallback, TrainerState, TrainingArguments)
from transformers.trainer_pt_utils import LengthGroupedSampler

from ftlab import methods, tasks
from ftlab.config import Config
from ftlab.console import say
from ftlab.data.splits import PreparedData
from ftlab.data.tokenize import make_collator
from ftlab.training.losses import weighted_loss
from ftlab.training.metrics import Scorer, find_collapse
from ftlab.training.optim import TRAINER_SCHEDULERS, SchedulerFactory, optimizer_choice, scheduler_factory
from ftlab.runs.predictions import SPLITS, SplitPredictions
from ftlab.training.record import peak_rss_mb
from ftlab.distributed import process_state
from ftlab.training.speed import (PROFILE_NAME, ProfileSteps, StepTimer, TrainingClock, configure_compile,
                                  resolve_precision, speed_arguments)


@dataclass
class Outcome:
    train_seconds: float
    train_samples_per_second: float
    train_tokens_per_second: float
    peak_memory_mb: float
    steady_step_seconds: Optional[float]  # mean optimizer step after warm-up, without evaluation/saving steps
    steady_samples_per_second: Optional[float]
    mean_train_tokens: float  # real (non-pad) tokens per training text
    metrics: dict[str, dict[str, Any]]  # split -> the task's metrics, loss, size (ftlab.training.metrics.Scorer)
    loss_history: list[dict[str, float]] = field(default_factory=list)
    eval_history: list[dict[str, float]] = field(default_factory=list)  # validation metrics at each evaluation
    best_checkpoint: Optional[str] = None  # with --load_best: the checkpoint that was tested
    stopped_early: bool = False
    collapse: list[str] = field(default_factory=list)
    compiled_graphs: Optional[int] = None  # with --torch_compile: graphs dynamo compiled (one per shape)
    predictions: dict[str, SplitPredictions] = field(default_factory=dict)  # split -> per-example predictions


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """Length-grouped batches whose order depends only on (seed, epoch).

    The Trainer's LengthGroupedSampler draws from the global RNG when its epoch starts, so a run resumed in the
    middle of an epoch (RNG restored to the checkpoint's, later, state) would see another order than the
    uninterrupted run. The Trainer calls set_epoch before each epoch, resumed or not.
    """

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class HarnessTrainer(Trainer):
    """The Trainer, plus schedules it does not have (LinearLR, OneCycleLR), built from its own step count, and a
    resumable length-grouped sampler."""

    def __init__(self, *args: Any, scheduler_factory: Optional[SchedulerFactory] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.scheduler_factory = scheduler_factory

    def create_scheduler(self, num_training_steps: int, optimizer: Optional[torch.optim.Optimizer] = None):
        if self.scheduler_factory is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = self.scheduler_factory(optimizer or self.optimizer, num_training_steps)
        self._created_lr_scheduler = True  # as the base class does: the Trainer re-creates it on a second train()
        return self.lr_scheduler

    def _get_train_sampler(self, train_dataset: Any = None) -> Optional[torch.utils.data.Sampler]:
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        # Lengths from our tokenizer's `length` column: the Trainer has already dropped that column from the
        # dataset it passes here and would re-measure every example.
        return EpochSeededLengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                               lengths=self.train_dataset["length"], seed=self.args.seed)

    def prediction_step(self, model: torch.nn.Module, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: Optional[list[str]] = None) -> tuple[Any, Any, Any]:
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        # Encoder-decoder classifiers (BART, T5) return the encoder's last hidden state beside the logits, and the
        # Trainer gathers every output: the logits come first and are all that is scored; the states of a whole
        # split would be texts x tokens x width, padded across batches.
        if isinstance(logits, tuple):
            logits = logits[0]
        return loss, logits, labels

    def _get_eval_sampler(self, eval_dataset: Any) -> list[int]:
        # transformers 5 evaluates length-grouped batches too (less padding), in a random order drawn when the
        # sampler is iterated. The order is drawn once here and kept, so that per-example predictions, which come
        # back in it (gathered over processes in batch order), can be put back in the split's order.
        sampler = super()._get_eval_sampler(eval_dataset)
        self.eval_order = list(sampler) if sampler is not None else list(range(len(eval_dataset)))
        return self.eval_order


# What an evaluation's console line shows, the first two a task has (ftlab.tasks): its primary metric and one more.
SHOWN_METRICS = ("accuracy", "f1", "samples_f1", "micro_f1", "mse", "pearson")


def log_line(logs: dict[str, Any], state: TrainerState) -> str:
    """One logged event as a line of the console's width: the Trainer prints its dict, 200 characters and more."""
    where = f"step {state.global_step}/{state.max_steps}, epoch {logs.get('epoch', state.epoch or 0):.2f}"
    if "eval_loss" in logs:
        shown = [f"{name} {logs[f'eval_{name}']:.4f}" for name in SHOWN_METRICS if f"eval_{name}" in logs][:2]
        shown.append(f"loss {logs['eval_loss']:.4f}")
        return f"validation at {where}: {', '.join(shown)}"
    if "loss" in logs:
        return (f"{where}: loss {logs['loss']:.4f}, learning rate {logs.get('learning_rate', 0):.3g}, "
                f"gradient norm {logs.get('grad_norm', float('nan')):.3g}")
    if "train_runtime" in logs:
        return (f"trained to {where} in {logs['train_runtime']:.1f} s ({logs.get('train_samples_per_second', 0):.1f} "
                f"samples/s), mean loss {logs.get('train_loss', float('nan')):.4f}")
    return f"{where}: " + ", ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                                    for key, value in logs.items() if key not in ("epoch", "total_flos"))


class LogLines(TrainerCallback):
    """The Trainer's log, one short line per event (instead of PrinterCallback's dicts)."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: Any, logs: Optional[dict] = None,
               **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            say(log_line(logs, state))


class CompactProgressCallback(ProgressCallback):
    """The Trainer's progress bar (on a terminal), with the log as short lines above it."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: Any, logs: Optional[dict] = None,
               **kwargs: Any) -> None:
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(f"[ftlab] {log_line(logs, state)}")


class CheckpointConfig(TrainerCallback):
    """Every checkpoint of an adapter carries the classifier's config.json (labels, pooling, truncation), as a
    saved adapter does (ftlab.models.export.save_adapter): PEFT's save writes only the adapter's config, and a
    checkpoint without it would be predicted with the base model's labels and pooling. Listed before the stop
    callback, whose on_save ends training."""

    def on_save(self, args: TrainingArguments, state: TrainerState, control: Any, model: Any = None,
                **kwargs: Any) -> None:
        if state.is_world_process_zero and model is not None and hasattr(model, "get_base_model"):
            model.get_base_model().config.save_pretrained(Path(args.output_dir) / f"checkpoint-{state.global_step}")


def best_metric(cfg: Config, problem_type: str) -> str:
    """--metric_for_best, or the task's primary metric."""
    return cfg.run.metric_for_best or tasks.get(problem_type).primary


def _schedule(cfg: Config, problem_type: str) -> dict[str, Any]:
    """When to evaluate and checkpoint. Checkpoints follow evaluations when the best one must be picked."""
    run = cfg.run
    picks_best = run.load_best or run.early_stopping_patience > 0
    if run.eval_steps:
        evaluation = {"eval_strategy": "steps", "eval_steps": run.eval_steps}
    elif cfg.optim.epochs > 1 or picks_best:
        evaluation = {"eval_strategy": "epoch"}
    else:
        # One epoch: the final model is evaluated on validation and test after training anyway.
        evaluation = {"eval_strategy": "no"}
    if picks_best and not run.save_steps:
        saving = {"save_strategy": evaluation["eval_strategy"], "save_steps": run.eval_steps or 500}
    elif run.save_steps:
        saving = {"save_strategy": "steps", "save_steps": run.save_steps}
    else:
        saving = {"save_strategy": "epoch"}
    best = {"load_best_model_at_end": run.load_best}
    if picks_best:
        metric = best_metric(cfg, problem_type)
        best.update(metric_for_best_model=metric, greater_is_better=tasks.better_larger(metric))
    return {**evaluation, **saving, **best, "save_total_limit": run.save_total_limit}


def training_arguments(cfg: Config, output_dir: str, optim: str, precision: str,
                       problem_type: str = tasks.SINGLE_LABEL) -> TrainingArguments:
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=cfg.optim.epochs,
        learning_rate=cfg.optim.lr,
        per_device_train_batch_size=cfg.optim.batch_size,
        per_device_eval_batch_size=cfg.optim.eval_batch_size,
        gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps,
        weight_decay=cfg.optim.weight_decay,
        max_grad_norm=cfg.optim.max_grad_norm,
        warmup_steps=cfg.optim.warmup_ratio,  # transformers 5: a float below 1 is a ratio of total steps
        optim=optim,
        # Ignored for linearlr/onecycle, which HarnessTrainer builds itself.
        lr_scheduler_type=cfg.optim.scheduler if cfg.optim.scheduler in TRAINER_SCHEDULERS else "linear",
        **_schedule(cfg, problem_type),
        logging_steps=cfg.run.logging_steps,
        seed=cfg.run.seed,
        run_name=cfg.tracking.run_name or Path(output_dir).name,
        report_to="none",  # W&B is added by build_trainer as a fail-safe callback
        # PEFT wraps the model's forward, so the Trainer cannot infer the label column by itself.
        label_names=["labels"],
        **speed_arguments(cfg, precision),
        disable_tqdm=not sys.stderr.isatty(),
        # DDP would otherwise search the graph for unused parameters after every backward (the Trainer's default
        # for a PeftModel). Frozen weights are outside DDP's view anyway, and every method trains only parameters
        # that the forward pass uses; a model where that is false stops with DDP's error naming the parameter.
        ddp_find_unused_parameters=False,
        # The classifiers take **kwargs in forward, so the Trainer would treat their loss as a sum over tokens and
        # multiply it by the number of processes; it is each process's mean, so it is averaged like one. (With the
        # default, two processes logged twice the loss, and clipping bit at half the --max_grad_norm.)
        average_tokens_across_devices=False,
        # A resumed run continues its callbacks' state too: the training clock's seconds and early stopping's
        # patience count (which would otherwise start again at 0 and train longer than the uninterrupted run).
        restore_callback_states_from_checkpoint=True,
    )


def optimizer_steps(cfg: Config, rows: int) -> int:
    """The optimizer steps a run of `rows` training texts takes, as the Trainer counts them (batches per process,
    gradient accumulation, epochs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    batches = math.ceil(rows / (cfg.optim.batch_size * world))
    return max(1, math.ceil(cfg.optim.epochs * max(1, batches // cfg.optim.gradient_accumulation_steps)))


def peak_memory_mb() -> float:
    """CUDA: peak allocated by tensors during the run. CPU: the process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def build_trainer(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, tokenized: Any, data: PreparedData,
                  cfg: Config, output_dir: str, tracking: bool = False,
                  callbacks: Sequence[TrainerCallback] = (), precision: Optional[str] = None) -> HarnessTrainer:
    """The Trainer of one run. `precision`: what the run resolved --precision to; resolved here when not given
    (a Trainer built on its own, as in the tests)."""
    optim, custom_optimizer = optimizer_choice(cfg.optim)
    precision = precision or resolve_precision(cfg.speed.precision)
    configure_compile(cfg)
    timer = StepTimer()
    trainer_callbacks: list[TrainerCallback] = [timer, TrainingClock(), CheckpointConfig(), *callbacks]
    if cfg.speed.profile_steps and process_state().is_main_process:
        trainer_callbacks.append(ProfileSteps(cfg.speed.profile_steps, Path(output_dir) / PROFILE_NAME))
    if cfg.run.early_stopping_patience:
        trainer_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.run.early_stopping_patience))
    if tracking:
        from ftlab.training.tracking import FailSafeWandbCallback

        trainer_callbacks.append(FailSafeWandbCallback())
    arguments = training_arguments(cfg, output_dir, optim, precision, data.problem_type)
    scorer = Scorer(data.problem_type, data.label_names, data.task.label_scaling, cfg.task.threshold)
    optimizer_cls, optimizer_kwargs = custom_optimizer or Trainer.get_optimizer_cls_and_kwargs(arguments, model)
    # A method's own optimizer (LoRA+'s per-matrix learning rates) over the Trainer's choice of class and settings.
    optimizer = methods.get(cfg.method.method).optimizer(model, cfg.method, optimizer_cls,
                                                         {**optimizer_kwargs, "weight_decay": cfg.optim.weight_decay})
    trainer = HarnessTrainer(model=model, args=arguments,
                             callbacks=trainer_callbacks,
                             train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
                             processing_class=tokenizer,
                             data_collator=make_collator(tokenizer, cfg.data.pad_to_max_length,
                                                         cfg.speed.pad_multiple),
                             compute_metrics=scorer.trainer_metrics(),
                             compute_loss_func=weighted_loss(data.problem_type, data.class_weights),
                             optimizer_cls_and_kwargs=None if optimizer else custom_optimizer,
                             optimizers=(optimizer, None),
                             scheduler_factory=scheduler_factory(cfg.optim))
    if trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(LogLines())
    elif trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(CompactProgressCallback())
    trainer.step_timer = timer
    trainer.scorer = scorer
    return trainer


# Prefixes the Trainer's loggers file under eval/ and test/ (W&B's rewrite_logs knows only these two).
METRIC_PREFIX = {"validation": "eval", "test": "test"}


def _evaluate_split(trainer: HarnessTrainer, split: Any, name: str) -> tuple[dict[str, Any], SplitPredictions]:
    """The split's record entry and per-example predictions. Validation comes first: a multi-label run's thresholds
    are tuned on it (or fixed), then kept for test."""
    prefix = METRIC_PREFIX[name]
    output = trainer.predict(split, metric_key_prefix=prefix)
    # Back to the split's order (see HarnessTrainer._get_eval_sampler).
    order = np.asarray(trainer.eval_order)
    logits, raw_labels = np.empty_like(output.predictions), np.empty_like(output.label_ids)
    logits[order], raw_labels[order] = output.predictions, output.label_ids
    scorer: Scorer = trainer.scorer
    if name == "validation":
        scorer.tune(raw_labels, logits)
    labels, scores = scorer.labels(raw_labels), scorer.scores(logits)
    # num_samples counts what was scored, gathered from all processes (the duplicates that even out their shards
    # dropped): it must equal the split's size.
    result = scorer.split_record(labels, scores)
    result["loss"] = float(output.metrics.get(f"{prefix}_loss", float("nan")))
    result["samples_per_second"] = float(output.metrics.get(f"{prefix}_samples_per_second", 0.0))
    # Example ids are matched to predictions by position: an order lost on the way would pair every prediction
    # with the wrong example, which the labels would show.
    if not np.allclose(raw_labels, np.asarray(split["label"], dtype=raw_labels.dtype)):
        raise RuntimeError(f"{name}: the evaluated labels are not in the split's order; per-example predictions "
                           f"cannot be matched to example ids")
    per_example = SplitPredictions(split["example_id"], labels, scorer.predictions(scores), scores)
    return result, per_example


def train_and_evaluate(trainer: Trainer, tokenized: Any, data: PreparedData, resume_from: Optional[str] = None,
                       train: bool = True) -> Outcome:
    """Train (from `resume_from`, a checkpoint directory, if given), then evaluate the final or best model.
    train=False (--eval_only) evaluates the model as loaded: no step is taken and train figures are 0."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start_epoch = _epoch_of(resume_from)  # read now: checkpoint rotation may delete it during training
    start = time.perf_counter()
    train_metrics = trainer.train(resume_from_checkpoint=resume_from).metrics if train else {}
    attempt_seconds = time.perf_counter() - start if train else 0.0
    # The Trainer replaces a restored callback with a new instance, so the clock is looked up, not kept.
    clock = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, TrainingClock))
    train_seconds = clock.seconds_before + attempt_seconds if train else 0.0
    evaluated = {name: _evaluate_split(trainer, tokenized[name], name) for name in SPLITS}
    metrics = {name: result for name, (result, _) in evaluated.items()}
    history = trainer.state.log_history
    losses = [{"step": entry["step"], "epoch": entry.get("epoch", 0.0), "loss": entry["loss"]}
              for entry in history if "loss" in entry]
    evaluations = [{"step": entry["step"], "epoch": entry.get("epoch", 0.0),
                    **{key[len("eval_"):]: value for key, value in entry.items()
                       if key.startswith("eval_") and not key.endswith(("runtime", "per_second"))}}
                   for entry in history if "eval_loss" in entry]
    # Tokens of the epochs actually trained (early stopping and resuming both change that count), over the whole
    # split: with several processes each trains on a shard in the same time, so this (like the Trainer's
    # train_samples_per_second) is the throughput of all processes together.
    epochs_trained = (trainer.state.epoch or 0.0) - start_epoch  # None when nothing trained (--eval_only)
    lengths = tokenized["train"]["length"]
    real_tokens = sum(lengths) * epochs_trained
    step_seconds = trainer.step_timer.steady_step_seconds()
    global_batch = trainer.args.train_batch_size * trainer.args.gradient_accumulation_steps * trainer.args.world_size
    return Outcome(
        train_seconds=train_seconds,
        train_samples_per_second=float(train_metrics.get("train_samples_per_second", 0.0)),
        train_tokens_per_second=real_tokens / attempt_seconds if attempt_seconds else 0.0,
        peak_memory_mb=peak_memory_mb(),
        steady_step_seconds=step_seconds,
        steady_samples_per_second=global_batch / step_seconds if step_seconds else None,
        mean_train_tokens=sum(lengths) / len(lengths),
        metrics=metrics,
        loss_history=losses,
        eval_history=evaluations,
        best_checkpoint=trainer.state.best_model_checkpoint if trainer.args.load_best_model_at_end else None,
        stopped_early=trainer.state.global_step < trainer.state.max_steps,
        collapse=find_collapse([entry["loss"] for entry in losses], metrics, data.label_names),
        compiled_graphs=_compiled_graphs() if trainer.args.torch_compile else None,
        predictions={name: per_example for name, (_, per_example) in evaluated.items()},
    )


def _compiled_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _epoch_of(checkpoint: Optional[str]) -> float:
    if not checkpoint:
        return 0.0
    return TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json")).epoch or 0.0
