"""Apply a fine-tuning method to a loaded classifier: decide which parameters train."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

from ftlab.config import MethodArgs
from ftlab.models.architectures import architecture_of


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
    matches = [name for name, _ in model.named_modules() if name == suffix or name.endswith("." + suffix)]
    if len(matches) != 1:
        raise ValueError(f"expected one module named {suffix!r}, found {matches or 'none'}")
    return matches[0]


def lora_config(model_type: str, args: MethodArgs) -> LoraConfig:
    arch = architecture_of(model_type)
    return LoraConfig(task_type=TaskType.SEQ_CLS, r=args.lora_r, lora_alpha=args.lora_alpha,
                      lora_dropout=args.lora_dropout, target_modules=arch.target_regex(),
                      modules_to_save=list(arch.head))


def apply_method(model: torch.nn.Module, args: MethodArgs) -> torch.nn.Module:
    model_type = model.config.model_type
    if args.method == "full":
        model.requires_grad_(True)
        return model
    if args.method == "head":
        _train_only(model, architecture_of(model_type).head)
        return model
    if args.method == "qlora":
        # Gradient checkpointing is a separate memory/speed trade-off, not part of QLoRA itself.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, lora_config(model_type, args))
