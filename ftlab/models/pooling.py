"""What the classification head reads: the first token's state (cls, the architecture's own head) or the
attention-masked mean of the last layer's token states (mean), the way sentence-transformers encoders such as
all-MiniLM-L6-v2 were trained to be read.

Mean pooling is two forward hooks, not a new head module, so the model keeps its class, parameter names and head
modules: trainable-parameter counts, PEFT's modules_to_save, the 4-bit skip list, save_pretrained, merging and DDP
see the same model as with cls. The backbone's pre-hook hands the attention mask to the encoder module, whose
hook puts the masked mean in the first position of its output; the architecture's own head reads that position in
place of [CLS] (BERT: pooler dense + tanh, then classifier; DistilBERT: pre_classifier, then classifier; RoBERTa:
its classification head). Hooks sit on modules that PEFT, scratch_lora, 4-bit loading and merging keep (they only
replace linear layers and wrap the head), and inside what torch.compile and DDP wrap.

The pooling travels in the model's config (`ftlab_pooling`, written to config.json by every save) and is
re-attached by whatever in ftlab loads a saved model.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from transformers import PreTrainedConfig, PreTrainedModel

from ftlab.models.architectures import architecture_of

POOLING_KEY = "ftlab_pooling"  # config.json attribute; a model saved without it reads its first token (cls)
_MASK = "ftlab_attention_mask"  # the encoder module's attribute holding the mask of the batch being run
_ATTACHED = "ftlab_mean_pooling"  # marks an encoder module that is already hooked


@dataclass(frozen=True)
class PoolingChoice:
    requested: str  # auto | cls | mean
    used: str  # cls | mean
    reason: str

    def as_record(self) -> dict[str, str]:
        return asdict(self)


def resolve_pooling(requested: str, model_location: str, adapter_dir: Optional[str] = None) -> PoolingChoice:
    """auto: a loaded adapter's own pooling; otherwise mean when the model's sentence-transformers pooling config
    says mean tokens, else cls. An explicit cls or mean is used as given."""
    adapter_pooling = _saved_pooling_in(Path(adapter_dir)) if adapter_dir else None
    if requested != "auto":
        differs = f"; the adapter in {adapter_dir} was trained with {adapter_pooling}" \
            if adapter_pooling not in (None, requested) else ""
        return PoolingChoice(requested, requested, f"--pooling {requested}{differs}")
    if adapter_pooling:
        return PoolingChoice(requested, adapter_pooling, f"the pooling the adapter in {adapter_dir} was trained with")
    if has_mean_pooling_config(model_location):
        return PoolingChoice(requested, "mean", f"the sentence-transformers pooling config of {model_location} "
                                                f"pools mean tokens")
    return PoolingChoice(requested, "cls", f"{model_location} has no sentence-transformers mean-pooling config")


def has_mean_pooling_config(location: str) -> bool:
    """Whether the sentence-transformers files in `location` (a directory, or a hub id: online or from the hub
    cache) pool by mean: modules.json names a Pooling module whose config.json sets pooling_mode_mean_tokens."""
    modules = _read_json(location, "modules.json")
    pooling = next((module for module in modules or () if str(module.get("type", "")).endswith(".Pooling")), None)
    if pooling is None:
        return False
    config = _read_json(location, f"{pooling['path']}/config.json" if pooling.get("path") else "config.json")
    return bool(config and config.get("pooling_mode_mean_tokens"))


def _read_json(location: str, filename: str) -> Any:
    from transformers.utils import cached_file

    # transformers' own lookup: a local directory's file, or the hub's (live, or its cache when offline).
    try:
        path = cached_file(location, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except OSError:  # e.g. a hub id that does not exist: loading the model says so in its own words
        return None
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else None


def _saved_pooling_in(directory: Path) -> str:
    config = directory / "config.json"
    saved = json.loads(config.read_text(encoding="utf-8")).get(POOLING_KEY) if config.is_file() else None
    return saved or "cls"


def saved_pooling(config: PreTrainedConfig) -> str:
    return getattr(config, POOLING_KEY, None) or "cls"


def apply_pooling(model: PreTrainedModel, pooling: str) -> None:
    """Make a transformers classifier (not yet wrapped by PEFT) pool the `pooling` way, and write that into its
    config so that every save of it says so."""
    setattr(model.config, POOLING_KEY, pooling)
    if pooling == "mean":
        _attach_mean_pooling(model)


def restore_pooling(model: torch.nn.Module) -> None:
    """Re-attach the pooling a loaded model (plain, or a PeftModel) was saved with."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    apply_pooling(base, saved_pooling(base.config))


def _attach_mean_pooling(model: PreTrainedModel) -> None:
    encoder_path = architecture_of(model.config.model_type).encoder
    backbone_prefix = model.base_model_prefix + "."
    if not encoder_path.startswith(backbone_prefix):
        raise ValueError(f"encoder {encoder_path!r} is not inside the backbone {model.base_model_prefix!r}")
    inner_path = encoder_path[len(backbone_prefix):]
    backbone = model.base_model
    encoder = backbone.get_submodule(inner_path)
    if getattr(encoder, _ATTACHED, False):
        return

    def hand_over_mask(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # The classifiers pass the mask by keyword; the backbones' second positional parameter is the mask too.
        mask = kwargs["attention_mask"] if "attention_mask" in kwargs else (args[1] if len(args) > 1 else None)
        # It goes on the encoder of the module being run, not on one captured here: nn.DataParallel runs replicas
        # of both in parallel threads.
        setattr(module.get_submodule(inner_path), _MASK, mask)

    backbone.register_forward_pre_hook(hand_over_mask, with_kwargs=True)
    encoder.register_forward_hook(_mean_into_first_position, with_kwargs=True)
    setattr(encoder, _ATTACHED, True)


def _mean_into_first_position(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    states = output.last_hidden_state
    mask = getattr(module, _MASK, None)
    setattr(module, _MASK, None)  # the batch's mask is not kept alive after its forward pass
    weights = torch.ones(states.shape[:2], device=states.device) if mask is None else mask
    weights = weights.to(states.dtype).unsqueeze(-1)
    # sentence-transformers' mean: special tokens count, padding does not.
    mean = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    output.last_hidden_state = torch.cat([mean.unsqueeze(1), states[:, 1:]], dim=1)
    return output
