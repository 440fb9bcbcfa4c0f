"""Apply a fine-tuning method to a loaded classifier: decide which parameters train."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import torch
from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training
from peft.tuners.tuners_utils import BaseTunerLayer

from ftlab.config import PEFT_METHODS, MethodArgs
from ftlab.errors import ConfigError
from ftlab.models.architectures import (LORA_SWITCHES, Architecture, discover, module_paths, names_regex,
                                       paths_regex)


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


def count_parameters(model: torch.nn.Module) -> ParameterCount:
    if hasattr(model, "get_nb_trainable_parameters"):
        # PEFT's count knows that a packed 4-bit weight holds two parameters per byte.
        trainable, total = model.get_nb_trainable_parameters()
        return ParameterCount(trainable, total)
    params = list(model.parameters())
    return ParameterCount(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))


def _train_only(model: torch.nn.Module, module_names: tuple[str, ...]) -> None:
    model.requires_grad_(False)
    for name in module_names:
        model.get_submodule(_find_module(model, name)).requires_grad_(True)


def _find_module(model: torch.nn.Module, suffix: str) -> str:
    """The full path of the module whose path ends with `suffix` (e.g. 'pooler' -> 'bert.pooler')."""
    matches = module_paths(model, suffix)
    if len(matches) != 1:
        raise ValueError(f"expected one module named {suffix!r}, found {matches or 'none'}")
    return matches[0]


ALL_LINEAR = "all-linear"  # PEFT's spelling


def lora_target_regex(arch: Architecture, args: MethodArgs) -> str:
    if args.lora_target_modules:
        if args.lora_target_modules.strip().lower() == ALL_LINEAR:
            # Resolved here rather than passed to PEFT as "all-linear": PEFT would also wrap the linears of the
            # head that LoRA trains in full (BERT's pooler, RoBERTa's classifier.dense), and scratch_lora reads
            # the same pattern.
            return paths_regex(arch.body_linears + (arch.head_linears if args.lora_head else ()))
        return names_regex([name.strip() for name in args.lora_target_modules.split(",") if name.strip()])
    switches = tuple(switch for switch in LORA_SWITCHES if getattr(args, f"lora_{switch}"))
    return arch.target_regex(switches, include_head=args.lora_head)


def _targets_conv1d(model: torch.nn.Module, pattern: str) -> bool:
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(module, Conv1D) for name, module in model.named_modules() if re.fullmatch(pattern, name))


def lora_config(arch: Architecture, args: MethodArgs, target_modules: str, fan_in_fan_out: bool) -> LoraConfig:
    # With --lora_head the head gets adapters instead of full training. The SEQ_CLS task type would add the
    # classifier to modules_to_save behind our back, so it is left out then.
    return LoraConfig(task_type=None if args.lora_head else TaskType.SEQ_CLS, r=args.lora_r,
                      lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=target_modules,
                      modules_to_save=None if args.lora_head else list(arch.head),
                      # GPT-2's Conv1D stores its weight transposed (in x out): PEFT's switch for it.
                      fan_in_fan_out=fan_in_fan_out, use_rslora=args.use_rslora, use_dora=args.use_dora)


def _unfreeze_last_blocks(model: torch.nn.Module, arch: Architecture, count: int) -> None:
    if arch.blocks is None:
        raise ConfigError(f"--method selective: model type {arch.model_type!r} has no list of transformer blocks "
                          f"that could be found; use --method lora with --lora_target_modules, or full")
    blocks = model.get_submodule(arch.blocks)
    if count > len(blocks):
        layers = getattr(model.config, "num_hidden_layers", len(blocks))
        shared = f" ({layers} layers share their weights)" if layers > len(blocks) else ""
        raise ConfigError(f"--unfreeze_layers {count}: the model has only {len(blocks)} transformer blocks{shared}")
    for block in list(blocks)[-count:]:
        block.requires_grad_(True)


def apply_method(model: torch.nn.Module, args: MethodArgs, arch: Optional[Architecture] = None) -> torch.nn.Module:
    """Decide what trains. With --load_adapter, LoRA methods resume that adapter; other methods start from the
    base with the adapter merged in (the seed's "LoRA, then fine-tune the head" chain). `arch`: the model's, where
    the caller discovered it already."""
    arch = arch or discover(model)
    if args.load_adapter:
        from peft import PeftModel

        if args.method in PEFT_METHODS:
            if args.method == "qlora":
                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
            return PeftModel.from_pretrained(model, args.load_adapter, is_trainable=True)
        model = PeftModel.from_pretrained(model, args.load_adapter).merge_and_unload()
    if args.method == "full":
        model.requires_grad_(True)
        return model
    if args.method in ("head", "selective"):
        _train_only(model, arch.head)
        if args.method == "selective":
            _unfreeze_last_blocks(model, arch, args.unfreeze_layers)
        return model
    if args.method == "scratch_lora":
        from ftlab.models.scratch_lora import apply_scratch_lora

        pattern = lora_target_regex(arch, args)
        if _targets_conv1d(model, pattern):
            raise ConfigError(f"--method scratch_lora wraps torch.nn.Linear layers; {arch.model_type}'s "
                              f"{', '.join(arch.conv1d)} are transformers Conv1D layers: use --method lora (PEFT "
                              f"handles them)")
        return apply_scratch_lora(model, pattern, r=args.lora_r, alpha=args.lora_alpha,
                                  dropout=args.lora_dropout, use_rslora=args.use_rslora,
                                  train_modules=() if args.lora_head else arch.head)
    if args.method == "qlora":
        # Gradient checkpointing is a separate memory/speed trade-off, not part of QLoRA itself.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    pattern = lora_target_regex(arch, args)
    return get_peft_model(model, lora_config(arch, args, pattern, _targets_conv1d(model, pattern)))


def skip_adapter_input_casts(model: torch.nn.Module, precision: str) -> int:
    """Under autocast (bf16, fp16), stop PEFT's LoRA layers from casting each adapter's input to the adapters'
    fp32 weight dtype; the number of layers switched.

    Autocast casts that input straight back to bf16 for the adapter's matmul, so the cast is two full-size copies
    of the activation per adapter, forward and backward, that change no bit of the result (tests/test_speed.py
    checks that losses and gradients are identical). Only the attention output and MLP down projections read bf16
    activations (the others read the fp32 residual stream, where the cast is a no-op), but the MLP's are the widest
    ones, so a LoRA step gets measurably faster (docs/studies/speed.md). Without autocast (fp32) the cast is PEFT's
    safeguard for base models stored in another dtype, so it stays; DoRA layers keep it too (their variant does
    more with the input than a matmul).
    """
    if precision not in ("bf16", "fp16"):
        return 0
    layers = [module for module in model.modules()
              if isinstance(module, BaseTunerLayer) and not getattr(module, "lora_variant", None)]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)
