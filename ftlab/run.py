"""One fine-tuning run, top to bottom: config -> data -> model + method -> Trainer -> record."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import yaml

from ftlab.config import Config
from ftlab.data.load import load_data
from ftlab.groups import ADAPTER_PROVENANCE, group_id
from ftlab.rundir import resolve_output_dir

if TYPE_CHECKING:
    from transformers import TrainerCallback


def run_training(cfg: Config, callbacks: Sequence["TrainerCallback"] = (),
                 extra: Optional[Mapping[str, Any]] = None) -> Optional[dict[str, Any]]:
    """The run's record on the main process; None on the other processes of a multi-process run. `callbacks` join
    the Trainer's own (a search's pruning callback, for example); `extra` are fields a caller adds to the record,
    as they stand when it is written (such a callback may still fill them in during training)."""
    # Heavy imports live here, after the config has been validated.
    from transformers import set_seed

    from ftlab.data.tokenize import tokenize_splits
    from ftlab.data.truncation import truncation_settings
    from ftlab.distributed import distributed_summary, largest, process_state
    from ftlab.models.architectures import dropout_attributes
    from ftlab.models.attention import use_fp32_attention
    from ftlab.models.export import export_models
    from ftlab.models.load import check_gradient_checkpointing, load_classifier, load_tokenizer, match_pad_token
    from ftlab.models.methods import apply_method, count_parameters, skip_adapter_input_casts
    from ftlab.models.pooling import apply_pooling, resolve_pooling
    from ftlab.models.sources import check_resolved_model, resolve_model
    from ftlab.predictions import save_run_predictions
    from ftlab.preemption import StopOnRequest
    from ftlab.results import data_summary, environment, format_summary, save_record, write_json_atomic
    from ftlab.resume import count_attempt, latest_checkpoint
    from ftlab.speed import PROFILE_NAME, resolve_dropout, resolve_precision
    from ftlab.tracking import finish_run, start_run
    from ftlab.train import build_trainer, train_and_evaluate

    state = process_state()
    output_dir = resolve_output_dir(cfg)
    # Before training: a run that saves its adapter where it loaded it from rewrites what identifies that adapter.
    precision = resolve_precision(cfg.speed.precision)  # a precision this device lacks fails before any download
    group = group_id(cfg, cfg.method.method, precision)
    # With several processes the main one fills the caches (mirrors, tokenised splits) and the others then read
    # them. Where each machine has its own cache, the processes of the other machines may build theirs at the
    # same time; harmless, as both the mirror fetch (file lock) and datasets (temporary file, then rename) write
    # atomically.
    with state.main_process_first():
        # Resolve the model before touching data, so that a model we cannot get fails before minutes of work.
        source = resolve_model(cfg.model.model)
        check_resolved_model(source, cfg.data.max_length, cfg.model.trust_remote_code)
        pooling = resolve_pooling(cfg.model.pooling, source.location, cfg.method.load_adapter)
        data = load_data(cfg)
        print(f"[ftlab] model: {cfg.model.model} from {source.origin} ({source.location}); pooling {pooling.used} "
              f"({pooling.reason})", flush=True)
        tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
        tokenized = tokenize_splits(data.splits, tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length,
                                    cfg.data.truncation)
    set_seed(cfg.run.seed)  # the new head's initial weights depend on it
    model = load_classifier(source, data.label_names, cfg.method, resolve_dropout(cfg.speed.attention_dropout),
                            resolve_dropout(cfg.speed.hidden_dropout), cfg.model.trust_remote_code)
    match_pad_token(model, tokenizer)
    model_type = model.config.model_type
    if cfg.speed.gradient_checkpointing:
        check_gradient_checkpointing(model)
    attention_key, hidden_key = dropout_attributes(model.config)
    attention_dropout = getattr(model.config, attention_key) if attention_key else None
    hidden_dropout = getattr(model.config, hidden_key) if hidden_key else None
    attention = use_fp32_attention(model, precision)
    # Before the method wraps it: the hooks and config attributes then ride along into every save and merge.
    apply_pooling(model, pooling.used)
    model.config.update(truncation_settings(cfg.data.truncation, cfg.data.max_length))
    model = apply_method(model, cfg.method)
    skip_adapter_input_casts(model, precision)
    params = count_parameters(model)
    print(f"[ftlab] method {cfg.method.method}: {params.trainable:,} trainable of {params.total:,} parameters "
          f"({params.percent:.2f}%)", flush=True)

    resume_from = latest_checkpoint(output_dir) if cfg.run.resume else None
    attempts = None
    if state.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
        attempts = count_attempt(output_dir, cfg.run.resume)
        if resume_from:
            print(f"[ftlab] attempt {attempts}: resuming from {resume_from}", flush=True)
    tracker = start_run(cfg, output_dir, group)  # main process only: one W&B run per training run
    # A stop request (signal, or the SLURM templates' stop file) ends training with a checkpoint, not a record.
    trainer = build_trainer(model, tokenizer, tokenized, data, cfg, str(output_dir), tracking=tracker is not None,
                            callbacks=[*callbacks, StopOnRequest()])
    # Every process trains and evaluates (the evaluation gathers all processes' predictions); one writes.
    outcome = train_and_evaluate(trainer, tokenized, data, resume_from=resume_from, train=not cfg.run.eval_only)
    peak_memory_mb = largest(outcome.peak_memory_mb)
    if not state.is_main_process:
        return None
    saved = export_models(trainer.model, tokenizer, cfg.method, output_dir)
    if "adapter" in saved:  # what trained it, so that runs chained on it group by configuration (ftlab.groups)
        write_json_atomic(Path(saved["adapter"]) / ADAPTER_PROVENANCE, {"group": group, "seed": cfg.run.seed})

    record = {
        "method": cfg.method.method,
        "model": cfg.model.model,
        "eval_only": cfg.run.eval_only,
        "seed": cfg.run.seed,
        "group": group,
        "pooling": pooling.as_record(),
        "model_type": model_type,
        "pad_token_from_eos": tokenizer.ftlab_pad_token_from_eos,
        "gradient_checkpointing": cfg.speed.gradient_checkpointing,
        "trust_remote_code": cfg.model.trust_remote_code,
        "truncation": cfg.data.truncation,
        "config": cfg.to_dict(),
        "output_dir": str(output_dir),
        "model_source": {"origin": source.origin, "location": source.location},
        "data": data_summary(data),
        "metrics": outcome.metrics,
        "predictions": save_run_predictions(output_dir, outcome.predictions, data.label_names),
        "trainable_params": params.trainable,
        "total_params": params.total,
        "trainable_percent": params.percent,
        "train_seconds": outcome.train_seconds,
        "train_samples_per_second": outcome.train_samples_per_second,
        "train_tokens_per_second": outcome.train_tokens_per_second,
        "peak_memory_mb": peak_memory_mb,
        "precision": precision,
        "attention_dropout": attention_dropout,
        "hidden_dropout": hidden_dropout,
        "attention": attention,
        "profile": str(output_dir / PROFILE_NAME) if cfg.speed.profile_steps else None,
        "steady_step_seconds": outcome.steady_step_seconds,
        "steady_samples_per_second": outcome.steady_samples_per_second,
        "compiled_graphs": outcome.compiled_graphs,
        "mean_train_tokens": outcome.mean_train_tokens,
        "loss_history": outcome.loss_history,
        "eval_history": outcome.eval_history,
        "collapse": "; ".join(outcome.collapse) or None,
        "resumed_from": resume_from,
        "attempts": attempts,
        "best_checkpoint": outcome.best_checkpoint,
        "stopped_early": outcome.stopped_early,
        "saved": saved,
        "environment": environment(),
        "distributed": distributed_summary(cfg.optim.batch_size, cfg.optim.gradient_accumulation_steps),
        **(extra or {}),
    }
    record["tracking"] = finish_run(tracker, record)
    save_record(output_dir, record)
    print(format_summary(record), flush=True)
    return record
