"""What the classification head reads: the first token's state (cls, an encoder's own head), the attention-masked
mean of the last layer's token states (mean), the way sentence-transformers encoders such as all-MiniLM-L6-v2 were
trained to be read, the last real token's state (last, what a decoder LM's own classifier reads: under causal
attention only the last token has seen the whole text), or an encoder-decoder's own (eos: BART's and T5's heads read
the decoder's state at the text's last EOS token; the only pooling they take).

Mean and last pooling are two forward hooks, not a new head module, so the model keeps its class, parameter names
and head modules: trainable-parameter counts, PEFT's modules_to_save, the 4-bit skip list, save_pretrained, merging
and DDP see the same model as with cls. The backbone's pre-hook hands the attention mask to the encoder module
(ftlab.models.architectures: the module that runs the blocks), whose hook puts the pooled vector in every position
of its output; the architecture's own head reads its usual position and finds it there (BERT: pooler dense + tanh
on the first, then classifier; DistilBERT: pre_classifier; RoBERTa: its classification head; Llama, GPT-2: score at
the last non-pad token). `last` finds the last real token from the attention mask, so right and left padding
give the same result, and a pad token borrowed from EOS cannot be mistaken for the end of the text. Hooks sit on
modules that PEFT, scratch_lora, 4-bit loading and merging keep (they only replace linear layers and wrap the
head), and inside what torch.compile and DDP wrap.

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

from ftlab.errors import ConfigError
from ftlab.models.architectures import Architecture, discover, is_decoder_type, is_encoder_decoder_type

POOLING_KEY = "ftlab_pooling"  # config.json attribute; a model saved without it reads its first token (cls)
_MASK = "ftlab_attention_mask"  # the encoder module's attribute holding the mask of the batch being run
_ATTACHED = "ftlab_pooling_hooked"  # marks an encoder module that is already hooked
_POOLED = "ftlab_pooled"  # the encoder module's attribute naming the pooling its hook computes
HOOKED_POOLINGS = ("mean", "last")


@dataclass(frozen=True)
class PoolingChoice:
    requested: str  # auto | cls | mean | last | eos
    used: str  # cls | mean | last | eos
    reason: str

    def as_record(self) -> dict[str, str]:
        return asdict(self)


def resolve_pooling(requested: str, model_location: str, adapter_dir: Optional[str] = None) -> PoolingChoice:
    """auto: a loaded adapter's own pooling; otherwise eos for an encoder-decoder, last for a decoder LM, mean when
    the model's sentence-transformers pooling config says mean tokens, else cls. An explicit choice is used as given,
    except cls on a decoder (its first token has seen nothing but itself), anything but eos on an encoder-decoder
    and eos on anything else."""
    adapter_pooling = _saved_pooling_in(Path(adapter_dir)) if adapter_dir else None
    config = _read_json(model_location, "config.json") or {}
    model_type = str(config.get("model_type"))
    decoder = is_decoder_type(model_type)
    if is_encoder_decoder_type(model_type):
        if requested not in ("auto", "eos"):
            raise ConfigError(f"--pooling {requested}: {model_location} is an encoder-decoder ({model_type}), whose "
                              f"head reads the decoder's state at the text's EOS token; use --pooling auto or eos")
        return PoolingChoice(requested, "eos", f"{model_location} is an encoder-decoder ({model_type}): its head "
                                               f"reads the decoder's state at the EOS token")
    if requested == "eos":
        raise ConfigError(f"--pooling eos: the EOS pooling of encoder-decoders' heads; {model_location} "
                          f"({model_type}) is none: use auto, cls, mean or last")
    if requested != "auto":
        if requested == "cls" and decoder:
            raise ConfigError(f"--pooling cls: {model_location} is a decoder LM ({config.get('model_type')}), whose "
                              f"first token sees only itself; use --pooling last (its own classifier's) or mean")
        differs = f"; the adapter in {adapter_dir} was trained with {adapter_pooling}" \
            if adapter_pooling not in (None, requested) else ""
        return PoolingChoice(requested, requested, f"--pooling {requested}{differs}")
    if adapter_pooling:
        return PoolingChoice(requested, adapter_pooling, f"the pooling the adapter in {adapter_dir} was trained with")
    if decoder:
        return PoolingChoice(requested, "last", f"the model is a decoder LM ({config['model_type']}): its last "
                                                f"real token has seen the whole text")
    if has_mean_pooling_config(model_location):
        return PoolingChoice(requested, "mean", "the model's sentence-transformers pooling config pools mean tokens")
    return PoolingChoice(requested, "cls", "the model has no sentence-transformers mean-pooling config")


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
    saved = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    return saved.get(POOLING_KEY) or _native_pooling(str(saved.get("model_type")))


def _native_pooling(model_type: str) -> str:
    """What a model saved without ftlab's pooling key reads: an encoder-decoder's own classifier its EOS token, a
    decoder's its last token, an encoder's its first."""
    if is_encoder_decoder_type(model_type):
        return "eos"
    return "last" if is_decoder_type(model_type) else "cls"


def saved_pooling(config: PreTrainedConfig) -> str:
    return getattr(config, POOLING_KEY, None) or _native_pooling(config.model_type)


def apply_pooling(model: PreTrainedModel, pooling: str, arch: Optional[Architecture] = None) -> None:
    """Make a transformers classifier (not yet wrapped by PEFT) pool the `pooling` way, and write that into its
    config so that every save of it says so. `arch`: the model's, where the caller discovered it already."""
    setattr(model.config, POOLING_KEY, pooling)
    if pooling in HOOKED_POOLINGS:
        _attach_pooling(model, pooling, arch or discover(model))


def restore_pooling(model: torch.nn.Module) -> None:
    """Re-attach the pooling a loaded model (plain, or a PeftModel) was saved with."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    apply_pooling(base, saved_pooling(base.config))


def _attach_pooling(model: PreTrainedModel, pooling: str, arch: Architecture) -> None:
    encoder_path = arch.encoder
    prefix = model.base_model_prefix
    if encoder_path != prefix and not encoder_path.startswith(prefix + "."):
        raise ValueError(f"encoder {encoder_path!r} is not inside the backbone {prefix!r}")
    inner_path = encoder_path[len(prefix) + 1:]  # "" where the backbone runs the blocks itself (Llama, GPT-2)
    backbone = model.base_model
    encoder = backbone.get_submodule(inner_path)
    setattr(encoder, _POOLED, pooling)
    if getattr(encoder, _ATTACHED, False):
        return

    def hand_over_mask(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # The classifiers pass the mask by keyword; the encoders' second positional parameter is the mask too.
        mask = kwargs["attention_mask"] if "attention_mask" in kwargs else (args[1] if len(args) > 1 else None)
        # It goes on the encoder of the module being run, not on one captured here: nn.DataParallel runs replicas
        # of both in parallel threads.
        setattr(module.get_submodule(inner_path), _MASK, mask)

    backbone.register_forward_pre_hook(hand_over_mask, with_kwargs=True)
    encoder.register_forward_hook(_pooled_into_every_position, with_kwargs=True)
    setattr(encoder, _ATTACHED, True)


def _pooled_into_every_position(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    states = output.last_hidden_state
    mask = getattr(module, _MASK, None)
    setattr(module, _MASK, None)  # the batch's mask is not kept alive after its forward pass
    if mask is None:
        mask = torch.ones(states.shape[:2], device=states.device, dtype=torch.long)
    # Prefix tuning hands the model a mask that also covers its virtual positions, which are not among the states.
    mask = mask[:, -states.shape[1]:]
    if getattr(module, _POOLED) == "last":
        # The highest position holding a real token: right padding and left padding alike.
        positions = torch.arange(states.shape[1], device=states.device)
        last = (positions * mask.to(positions.dtype)).argmax(dim=1)
        pooled = states[torch.arange(states.shape[0], device=states.device), last]
    else:
        weights = mask.to(states.dtype).unsqueeze(-1)
        # sentence-transformers' mean: special tokens count, padding does not.
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    # Every position: whichever one the head reads (the first for encoders, the last non-pad one for decoders)
    # holds the pooled vector. A broadcast view, no copy.
    output.last_hidden_state = pooled.unsqueeze(1).expand_as(states)
    return output
