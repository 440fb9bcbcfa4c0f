"""Build the Hugging Face Trainer for a run, train, and evaluate every split."""
from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments

from ftlab.config import Config
from ftlab.data.splits import PreparedData
from ftlab.data.tokenize import make_collator
from ftlab.metrics import classification_metrics, confusion, trainer_metrics
from ftlab.optim import TRAINER_SCHEDULERS, SchedulerFactory, optimizer_choice, scheduler_factory


@dataclass
class Outcome:
    train_seconds: float
    train_samples_per_second: float
    train_tokens_per_second: float
    peak_memory_mb: float
    metrics: dict[str, dict[str, Any]]  # split -> accuracy, precision, recall, f1, loss, confusion_matrix
    loss_history: list[dict[str, float]] = field(default_factory=list)


class HarnessTrainer(Trainer):
    """The Trainer, plus schedules it does not have (LinearLR, OneCycleLR), built from its own step count."""

    def __init__(self, *args: Any, scheduler_factory: Optional[SchedulerFactory] = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.scheduler_factory = scheduler_factory

    def create_scheduler(self, num_training_steps: int, optimizer: Optional[torch.optim.Optimizer] = None):
        if self.scheduler_factory is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = self.scheduler_factory(optimizer or self.optimizer, num_training_steps)
        self._created_lr_scheduler = True  # as the base class does: the Trainer re-creates it on a second train()
        return self.lr_scheduler


def training_arguments(cfg: Config, output_dir: str, optim: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=cfg.optim.epochs,
        learning_rate=cfg.optim.lr,
        per_device_train_batch_size=cfg.optim.batch_size,
        per_device_eval_batch_size=cfg.optim.eval_batch_size,
        gradient_accumulation_steps=cfg.optim.gradient_accumulation_steps,
        weight_decay=cfg.optim.weight_decay,
        warmup_steps=cfg.optim.warmup_ratio,  # transformers 5: a float below 1 is a ratio of total steps
        optim=optim,
        # Ignored for linearlr/onecycle, which HarnessTrainer builds itself.
        lr_scheduler_type=cfg.optim.scheduler if cfg.optim.scheduler in TRAINER_SCHEDULERS else "linear",
        # Per-epoch validation only with several epochs: the final model is evaluated on validation and test
        # after training anyway.
        eval_strategy="epoch" if cfg.optim.epochs > 1 else "no",
        save_strategy="no",
        logging_steps=cfg.run.logging_steps,
        seed=cfg.run.seed,
        report_to="none",
        # PEFT wraps the model's forward, so the Trainer cannot infer the label column by itself.
        label_names=["labels"],
        # Batches of similar length waste little compute on padding; pointless when everything is padded.
        train_sampling_strategy="random" if cfg.data.pad_to_max_length else "group_by_length",
        disable_tqdm=not sys.stderr.isatty(),
    )


def peak_memory_mb() -> float:
    """CUDA: peak allocated by tensors during the run. CPU: the process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build_trainer(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, tokenized: Any, data: PreparedData,
                  cfg: Config, output_dir: str) -> HarnessTrainer:
    optim, custom_optimizer = optimizer_choice(cfg.optim)
    return HarnessTrainer(model=model, args=training_arguments(cfg, output_dir, optim),
                          train_dataset=tokenized["train"],
                          eval_dataset=tokenized["validation"], processing_class=tokenizer,
                          data_collator=make_collator(tokenizer, cfg.data.pad_to_max_length),
                          compute_metrics=trainer_metrics(data.num_labels),
                          optimizer_cls_and_kwargs=custom_optimizer,
                          scheduler_factory=scheduler_factory(cfg.optim))


def _evaluate_split(trainer: Trainer, split: Any, name: str, num_labels: int) -> dict[str, Any]:
    output = trainer.predict(split, metric_key_prefix=name)
    predictions = np.argmax(output.predictions, axis=-1)
    result = classification_metrics(output.label_ids, predictions, num_labels)
    result["loss"] = float(output.metrics.get(f"{name}_loss", float("nan")))
    result["samples_per_second"] = float(output.metrics.get(f"{name}_samples_per_second", 0.0))
    result["confusion_matrix"] = confusion(output.label_ids, predictions, num_labels)
    result["num_samples"] = int(len(split))
    return result


def train_and_evaluate(trainer: Trainer, tokenized: Any, data: PreparedData, train: bool = True) -> Outcome:
    """train=False (--eval_only) evaluates the model as loaded: no step is taken and train figures are 0."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    real_tokens = int(sum(tokenized["train"]["length"])) * trainer.args.num_train_epochs
    start = time.perf_counter()
    train_metrics = trainer.train().metrics if train else {}
    train_seconds = time.perf_counter() - start if train else 0.0
    metrics = {name: _evaluate_split(trainer, tokenized[name], name, data.num_labels)
               for name in ("validation", "test")}
    losses = [{"step": entry["step"], "epoch": entry.get("epoch", 0.0), "loss": entry["loss"]}
              for entry in trainer.state.log_history if "loss" in entry]
    return Outcome(
        train_seconds=train_seconds,
        train_samples_per_second=float(train_metrics.get("train_samples_per_second", 0.0)),
        train_tokens_per_second=real_tokens / train_seconds if train_seconds else 0.0,
        peak_memory_mb=peak_memory_mb(),
        metrics=metrics,
        loss_history=losses,
    )
