"""Load a classifier that a run saved, for inference: a plain model (a merged LoRA, a full or head fine-tune, a
checkpoint of one) or a LoRA adapter directory (the run's model/, --save_adapter's, a checkpoint of a LoRA run).

An adapter directory (PEFT `save_pretrained`) holds adapter_config.json, adapter_model.safetensors (the LoRA weights
and the head trained through modules_to_save), the tokenizer, and config.json: the classifier's config, which
carries the label names and count that the base checkpoint does not know (ftlab.models.export.save_adapter).
Both kinds of config.json also say how the run pooled (`ftlab_pooling`, re-attached here) and cut its texts
(`ftlab_truncation`, `ftlab_max_length`). Checkpoints of runs before checkpoints carried config.json lack that: the
caller passes what the run's record says (`label_names`, `settings`).

Weights that loading leaves at random (a head the directory does not hold) are refused, not predicted with; the
load report transformers logs for the base's missing head is then only noise and stays quiet unless `verbose`.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Sequence

from ftlab.errors import ModelSourceError

if TYPE_CHECKING:  # torch/transformers are imported late so that the CLI can set the hub's offline switch first
    from transformers import PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

MODEL_DIR = "model"  # in a run's directory: what predict loads (ftlab.models.export.export_models writes it)
ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"


def holds_model(directory: Path) -> bool:
    """Whether `directory` holds a saved model or adapter."""
    return (directory / ADAPTER_CONFIG).is_file() or (directory / MODEL_CONFIG).is_file()


def load_for_inference(model_dir: str, label_names: Optional[Sequence[str]] = None,
                       settings: Optional[Mapping[str, Any]] = None, verbose: bool = False
                       ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The classifier saved in `model_dir`, pooling as it was trained to, and its tokenizer; the model is in eval
    mode. `label_names` and `settings` (config attributes such as ftlab_pooling) are the run's, for a directory
    whose config does not say them (an adapter checkpoint of an older run)."""
    directory, settings = Path(model_dir), settings or {}
    if not directory.is_dir():
        raise ModelSourceError(f"--model_dir {model_dir}: no such directory")
    with _load_report_quiet(verbose):
        if (directory / ADAPTER_CONFIG).is_file():
            model, base_location = _load_adapter(directory, label_names, settings)
        elif (directory / MODEL_CONFIG).is_file():
            model, base_location = _load_plain(directory, settings), None
        else:
            raise ModelSourceError(f"--model_dir {model_dir} holds neither {MODEL_CONFIG} (a saved model) nor "
                                   f"{ADAPTER_CONFIG} (a saved LoRA adapter)")
    from ftlab.models.pooling import restore_pooling

    restore_pooling(model)
    model.eval()
    return model, _load_tokenizer(directory, base_location)


def _with_settings(config: PreTrainedConfig, settings: Mapping[str, Any]) -> PreTrainedConfig:
    for key, value in settings.items():
        if getattr(config, key, None) is None:
            setattr(config, key, value)
    return config


def _load_plain(directory: Path, settings: Mapping[str, Any]) -> PreTrainedModel:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = _with_settings(AutoConfig.from_pretrained(directory), settings)
        model, info = AutoModelForSequenceClassification.from_pretrained(directory, config=config,
                                                                         output_loading_info=True)
    except OSError as exc:  # e.g. config.json without weights
        raise ModelSourceError(f"cannot load the model in {directory}: {str(exc).splitlines()[0]}") from None
    unused = [key for key in info["unexpected_keys"] if "lora_" in key]
    if unused:
        # scratch_lora's checkpoints hold the base and its adapters side by side; the plain class ignores the latter
        raise ModelSourceError(f"--model_dir {directory}: a checkpoint with unmerged LoRA layers ({unused[0]}, ...); "
                               f"predict with the run's directory (its merged model/) instead")
    if info["missing_keys"]:
        raise ModelSourceError(f"--model_dir {directory}: its weights lack {', '.join(sorted(info['missing_keys']))}, "
                               f"which would be random: not a model a run saved")
    return model


def _load_adapter(directory: Path, label_names: Optional[Sequence[str]],
                  settings: Mapping[str, Any]) -> tuple[PreTrainedModel, str]:
    """Base model + adapter, by hand. AutoPeftModelForSequenceClassification loads the base with the base's own
    config (its label count, names LABEL_i), so a 3-label adapter on a 2-label checkpoint fails with a size mismatch;
    its `config` argument is the PEFT config, and the ignore_mismatched_sizes we would need goes on to PEFT's adapter
    loader too, where it would silently skip a saved head of the wrong shape."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base_location = PeftConfig.from_pretrained(str(directory)).base_model_name_or_path
    if not base_location:
        raise ModelSourceError(f"{directory / ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    try:
        if (directory / MODEL_CONFIG).is_file():
            config = AutoConfig.from_pretrained(directory)
        elif label_names:  # a checkpoint of an older run: the labels its record names
            config = AutoConfig.from_pretrained(base_location, num_labels=len(label_names),
                                                id2label=dict(enumerate(label_names)),
                                                label2id={name: i for i, name in enumerate(label_names)})
        else:
            # An adapter saved without the classifier config falls back to the base's: right only when the label
            # count matches, and the labels are then called LABEL_0, LABEL_1, ...
            config = AutoConfig.from_pretrained(base_location)
        # Like training (ftlab.models.load.load_classifier): a base checkpoint with another label count gets a
        # fresh head here, which the adapter's saved head then replaces.
        base, info = AutoModelForSequenceClassification.from_pretrained(
            base_location, config=_with_settings(config, settings), ignore_mismatched_sizes=True,
            output_loading_info=True)
    except OSError as exc:
        raise ModelSourceError(f"cannot load the base model {base_location!r} that {directory / ADAPTER_CONFIG} "
                               f"names: {str(exc).splitlines()[0]}") from None
    from ftlab import methods

    # Loaded by the adapter's method: on the base as it needs it (prefix tuning reads the cache under its old name),
    # with its targets as named (LoRA on expert stacks).
    model = methods.of_adapter(PeftConfig.from_pretrained(str(directory)).peft_type).load(base, str(directory))
    # Weights missing from the base checkpoint were initialised at random both in training and here, so unless the
    # adapter saved them (modules_to_save), the predictions would be noise. This happens with --lora_head when the
    # base checkpoint has no head or one for another label count: the adapter holds only the head's LoRA deltas.
    saved = list(model.peft_config["default"].modules_to_save or ())
    mismatched = [entry[0] if isinstance(entry, tuple) else entry for entry in info["mismatched_keys"]]
    fresh = [key for key in [*info["missing_keys"], *mismatched] if not any(f".{name}." in f".{key}" for name in saved)]
    if fresh:
        raise ModelSourceError(f"the adapter in {directory} does not hold {', '.join(sorted(fresh))}, which the base "
                               f"model {base_location!r} lacks; predict with a merged model (--merge) instead")
    return model, base_location


@contextmanager
def _load_report_quiet(verbose: bool) -> Iterator[None]:
    """transformers' load report names the base's head as missing and newly initialised; the loaders above check
    themselves that a saved head replaced it (or refuse), so the report is noise here. (A filter, not a logger
    level: transformers runs more checks, with warnings of their own, when that logger's level is raised.)"""
    def no_report(record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in record.getMessage()

    logger = logging.getLogger("transformers.modeling_utils")
    if not verbose:
        logger.addFilter(no_report)
    try:
        yield
    finally:
        logger.removeFilter(no_report)


def _load_tokenizer(directory: Path, base_location: Optional[str]) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    if (directory / TOKENIZER_CONFIG).is_file():
        return AutoTokenizer.from_pretrained(directory)
    if base_location is not None:  # an adapter saved without its tokenizer: the base's is the one it trained with
        return AutoTokenizer.from_pretrained(base_location)
    raise ModelSourceError(f"--model_dir {directory} has no tokenizer ({TOKENIZER_CONFIG})")
