"""One fine-tuning run, top to bottom: config -> data -> model + method -> Trainer -> record.

Imported only once the configuration has been checked (ftlab.runs.plan): this module loads torch and transformers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml
from transformers import PreTrainedTokenizerBase, TrainerCallback, set_seed

from ftlab import methods
from ftlab.config import ADAPTER_PROVENANCE, Config, group_id
from ftlab.console import say, short_path
from ftlab.data.load import load_data
from ftlab.data.splits import PreparedData
from ftlab.data.pairs import SHARED_BUDGET, pair_template
from ftlab.data.tokenize import tokenize_splits
from ftlab.data.truncation import LABEL_SCALING_KEY, THRESHOLDS_KEY, truncation_settings
from ftlab.distributed import distributed_summary, largest, process_state
from ftlab.models.architectures import discover, dropout_attributes
from ftlab.models.attention import use_fp32_attention
from ftlab.models.export import export_models
from ftlab.models.load import (check_gradient_checkpointing, load_classifier, load_tokenizer, match_pad_token,
                               unquantised_layers)
from ftlab.methods import ApplyContext, count_parameters, skip_adapter_input_casts
from ftlab.models.pooling import PoolingChoice, apply_pooling, resolve_pooling
from ftlab.models.sources import ModelSource, check_resolved_model, load_config, resolve_model
from ftlab.models.tuning import apply_method, check_method_fits
from ftlab.runs.card import write_run_cards
from ftlab.runs.directory import CONFIG_NAME, resolve_output_dir, write_atomic, write_json_atomic
from ftlab.runs.predictions import save_run_predictions
from ftlab.runs.preemption import StopOnRequest
from ftlab.runs.record import RESULT_NAME, RunRecord
from ftlab.runs.resume import count_attempt, latest_checkpoint, prune_checkpoints
from ftlab.training.record import build_record, environment, finish_record
from ftlab.training.speed import PROFILE_NAME, family_precision, resolve_dropout, resolve_precision
from ftlab.training.tracking import finish_run, start_run
from ftlab.training.trainer import build_trainer, optimizer_steps, train_and_evaluate

# Texts that data-driven initialisations (LoRA's EVA and CorDA) read: 16 batches of the training split, enough for
# their SVDs of the layers' inputs at these widths (peft's CorDA guide: hidden width / tokens per text x 128 texts).
CALIBRATION_BATCHES = 16


@dataclass
class Inputs:
    """What a run reads before it builds its model: the model's source and pooling, the precision it trains in (and
    why, where its family decided), the data and its tokens."""
    source: ModelSource
    pooling: PoolingChoice
    precision: str
    precision_reason: Optional[str]
    data: PreparedData
    tokenizer: PreTrainedTokenizerBase
    tokenized: Any
    pair_template: Optional[str] = None  # the template pairs of texts were encoded with (ftlab.data.pairs)


def run_training(cfg: Config, callbacks: Sequence[TrainerCallback] = (),
                 extra: Optional[Mapping[str, Any]] = None) -> Optional[dict[str, Any]]:
    """The run's record on the main process; None on the other processes of a multi-process run. `callbacks` join
    the Trainer's own (a search's pruning callback, for example); `extra` are fields a caller adds to the record,
    as they stand when it is written (such a callback may still fill them in during training)."""
    state = process_state()
    output_dir = resolve_output_dir(cfg)
    # A precision this device lacks fails before any download, one the model's family cannot take before the data.
    inputs = _read_inputs(cfg, resolve_precision(cfg.speed.precision))
    precision = inputs.precision
    # Before training: a run that saves its adapter where it loaded it from rewrites what identifies that adapter.
    group = group_id(cfg, cfg.method.method, precision)
    set_seed(cfg.run.seed)  # the new head's initial weights depend on it
    model, model_details = _build_model(cfg, inputs, precision, output_dir)
    params = count_parameters(model)
    say(f"method {cfg.method.method}: {params.trainable:,} trainable of {params.total:,} parameters "
        f"({params.percent:.2f}%)")

    resume_from = latest_checkpoint(output_dir) if cfg.run.resume else None
    attempts = _start_directory(cfg, output_dir, resume_from) if state.is_main_process else None
    tracker = start_run(cfg, output_dir, group)  # main process only: one W&B run per training run
    # A stop request (signal, or the SLURM templates' stop file) ends training with a checkpoint, not a record.
    trainer = build_trainer(model, inputs.tokenizer, inputs.tokenized, inputs.data, cfg, str(output_dir),
                            tracking=tracker is not None,
                            callbacks=[*callbacks, StopOnRequest(),
                                       *methods.get(cfg.method.method).callbacks(model, cfg.method)],
                            precision=precision)
    # Every process trains and evaluates (the evaluation gathers all processes' predictions); one writes.
    outcome = train_and_evaluate(trainer, inputs.tokenized, inputs.data, resume_from=resume_from,
                                 train=not cfg.run.eval_only)
    peak_memory_mb = largest(outcome.peak_memory_mb)
    if not state.is_main_process:
        return None
    if trainer.scorer.thresholds is not None:  # the thresholds tuned on validation travel with the saved model
        base = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
        base.config.update({THRESHOLDS_KEY: [float(t) for t in trainer.scorer.thresholds]})
    saved = export_models(trainer.model, inputs.tokenizer, cfg.method, output_dir)
    if "adapter" in saved:  # what trained it, so that runs chained on it group by configuration (ftlab.config.groups)
        write_json_atomic(Path(saved["adapter"]) / ADAPTER_PROVENANCE, {"group": group, "seed": cfg.run.seed})

    record = build_record(
        cfg, method=cfg.method.method, model=cfg.model.model, group=group, output_dir=output_dir, data=inputs.data,
        metrics=outcome.metrics,
        predictions=save_run_predictions(output_dir, outcome.predictions, inputs.data.label_names),
        trainable_params=params.trainable, total_params=params.total, trainable_percent=params.percent,
        train_seconds=outcome.train_seconds, train_samples_per_second=outcome.train_samples_per_second,
        train_tokens_per_second=outcome.train_tokens_per_second, peak_memory_mb=peak_memory_mb,
        loss_history=outcome.loss_history, environment=environment(), eval_only=cfg.run.eval_only,
        pooling=inputs.pooling.as_record(),
        truncation=cfg.data.truncation,
        pairs={"template": inputs.pair_template, "budget": SHARED_BUDGET} if inputs.pair_template else None,
        model_source={"origin": inputs.source.origin, "location": inputs.source.location},
        precision=precision,
        precision_reason=inputs.precision_reason,
        **model_details,
        profile=str(output_dir / PROFILE_NAME) if cfg.speed.profile_steps else None,
        steady_step_seconds=outcome.steady_step_seconds,
        steady_samples_per_second=outcome.steady_samples_per_second,
        compiled_graphs=outcome.compiled_graphs,
        mean_train_tokens=outcome.mean_train_tokens,
        eval_history=outcome.eval_history,
        collapse="; ".join(outcome.collapse) or None,
        resumed_from=resume_from,
        attempts=attempts,
        best_checkpoint=outcome.best_checkpoint,
        stopped_early=outcome.stopped_early,
        saved=saved,
        distributed=distributed_summary(cfg.optim.batch_size, cfg.optim.gradient_accumulation_steps),
        **(extra or {}),
    )
    record["tracking"] = finish_run(tracker, record)
    finish_record(output_dir, record)
    write_run_cards(RunRecord.load(output_dir / RESULT_NAME))  # the metrics they show are the saved record's
    # Only now: a run stopped before its record keeps every checkpoint for --resume.
    prune_checkpoints(output_dir, cfg.run.keep_checkpoints, outcome.best_checkpoint)
    return record


def _read_inputs(cfg: Config, precision: str) -> Inputs:
    """The model's source (resolved before the data, so that a model we cannot get fails before minutes of work),
    the precision its family trains in (`precision`: what --precision resolved to on this device), the data, the
    tokenizer and the tokenised splits.

    With several processes the main one fills the caches (mirrors, tokenised splits) and the others then read them.
    Where each machine has its own cache, the processes of the other machines may build theirs at the same time;
    harmless, as both the mirror fetch (file lock) and datasets (temporary file, then rename) write atomically."""
    with process_state().main_process_first():
        source = resolve_model(cfg.model.model)
        check_resolved_model(source, cfg.data.max_length, cfg.model.trust_remote_code)
        # Before the data: a model the method cannot train, or a precision its family cannot take, stops now, in one
        # line.
        config = load_config(source, cfg.model.trust_remote_code)
        check_method_fits(config, cfg.method, cfg.model.trust_remote_code)
        precision, precision_reason = family_precision(precision, cfg.speed.precision, config.model_type)
        if precision_reason:
            say(f"precision {precision}: {precision_reason}")
        pooling = resolve_pooling(cfg.model.pooling, source.location, cfg.method.load_adapter)
        data = load_data(cfg)
        location = short_path(source.location)
        say(f"model: {cfg.model.model} from {source.origin}" + (f" ({location})" if location != cfg.model.model
                                                                 else ""))
        say(f"pooling: {pooling.used} ({pooling.reason})")
        tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
        tokenized = tokenize_splits(data.splits, tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length,
                                    cfg.data.truncation)
        template = pair_template(tokenizer) if data.has_pairs else None
    if template:
        say(f"pairs: {template}, {SHARED_BUDGET}")
    return Inputs(source, pooling, precision, precision_reason, data, tokenizer, tokenized, template)


def _calibration_batches(cfg: Config, inputs: Inputs) -> list[dict]:
    """The first CALIBRATION_BATCHES training batches, padded as training pads them, without the labels."""
    from ftlab.data.tokenize import make_collator

    collate = make_collator(inputs.tokenizer, cfg.data.pad_to_max_length, cfg.speed.pad_multiple)
    columns = [name for name in inputs.tokenizer.model_input_names if name in inputs.tokenized["train"].column_names]
    rows = inputs.tokenized["train"].select_columns(columns)
    size = cfg.optim.batch_size
    return [collate([rows[i] for i in range(start, min(start + size, len(rows)))])
            for start in range(0, min(len(rows), size * CALIBRATION_BATCHES), size)]


def _build_model(cfg: Config, inputs: Inputs, precision: str, output_dir: Path) -> tuple[Any, dict[str, Any]]:
    """The classifier with its pooling, truncation settings and method applied, and the record's fields about it:
    the dropouts it trains with and the attention it computes."""
    model = load_classifier(inputs.source, inputs.data.label_names, cfg.method,
                            resolve_dropout(cfg.speed.attention_dropout), resolve_dropout(cfg.speed.hidden_dropout),
                            cfg.model.trust_remote_code, inputs.data.problem_type)
    match_pad_token(model, inputs.tokenizer)
    if cfg.speed.gradient_checkpointing:
        check_gradient_checkpointing(model)
    attention_key, hidden_key = dropout_attributes(model.config)
    details = {"model_type": model.config.model_type,
               "pad_token_from_eos": inputs.tokenizer.ftlab_pad_token_from_eos,
               "gradient_checkpointing": cfg.speed.gradient_checkpointing,
               "trust_remote_code": cfg.model.trust_remote_code,
               "attention_dropout": getattr(model.config, attention_key) if attention_key else None,
               "hidden_dropout": getattr(model.config, hidden_key) if hidden_key else None,
               "attention": use_fp32_attention(model, precision)}
    arch = discover(model)  # once: pooling and the method read it
    if methods.get(cfg.method.method).four_bit_base:
        details["unquantised_layers"] = unquantised_layers(model, arch.body_linears)
        if details["unquantised_layers"]:
            say(f"4-bit base: {len(details['unquantised_layers'])} linear layers stay in full precision "
                f"(unquantised_layers in the record), e.g. {next(iter(details['unquantised_layers'].items()))}")
    # Before the method wraps it: the hooks and config attributes then ride along into every save and merge.
    apply_pooling(model, inputs.pooling.used, arch)
    model.config.update(truncation_settings(cfg.data.truncation, cfg.data.max_length))
    if inputs.data.task.label_scaling is not None:  # predict maps the outputs back to the targets' scale
        model.config.update({LABEL_SCALING_KEY: list(inputs.data.task.label_scaling)})
    context = ApplyContext(arch=arch, batches=lambda: _calibration_batches(cfg, inputs),
                           model_location=inputs.source.location, run_dir=output_dir,
                           total_steps=optimizer_steps(cfg, len(inputs.tokenized["train"])))
    model = apply_method(model, cfg.method, arch, context)
    skip_adapter_input_casts(model, precision)
    return model, details


def _start_directory(cfg: Config, output_dir: Path, resume_from: Optional[str]) -> int:
    """The run's directory with its config.yaml; this attempt's number (main process only)."""
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    write_atomic(output_dir / CONFIG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    attempts = count_attempt(output_dir, cfg.run.resume)
    if resume_from:
        say(f"attempt {attempts}: resuming from {resume_from}")
    return attempts
