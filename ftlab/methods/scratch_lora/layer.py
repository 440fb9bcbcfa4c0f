"""The layer of method `scratch_lora`: LoRA written out by hand, the same maths as PEFT's default LoRA, without PEFT.

It exists to show what LoRA is (two small matrices added beside each frozen linear) and to check PEFT against an
independent implementation. It matches PEFT's defaults: the same initialisation, scaling and dropout placement,
so the same weights give the same logits and gradients (tests/test_scratch_lora.py).
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ftlab.methods.targets import module_paths, within


class LoRALinear(nn.Module):
    """A frozen linear plus a trainable rank-r update: y = base(x) + scaling * B A dropout(x)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0, use_rslora: bool = False):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {r}")
        self.base = base
        base.requires_grad_(False)
        self.r = r
        # rsLoRA: alpha / sqrt(r) keeps the update's size from shrinking as the rank grows.
        self.scaling = alpha / math.sqrt(r) if use_rslora else alpha / r
        # An Identity when 0, as in PEFT: nn.Dropout(0) would still cost a kernel call per layer.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PEFT's default (from Microsoft's loralib): A like nn.Linear's own init, B zero, so that a fresh adapter
        # adds exactly nothing and training starts from the base model.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight: model code reads its layers' weights (T5's feed-forward casts its input to
        wo.weight's dtype), as it can through PEFT's layers."""
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Two thin matmuls (x A^T, then B^T) instead of forming the full out x in matrix B A: that is the point of
        # LoRA's low rank. Same operation order as PEFT, so results agree to the last bit.
        return self.base(x) + F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same function (in eval mode), with the base's requires_grad."""
        base = self.base
        linear = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        linear.weight.copy_(base.weight + self.delta_weight())
        if base.bias is not None:
            linear.bias.copy_(base.bias)
        linear.requires_grad_(base.weight.requires_grad)
        return linear

    def extra_repr(self) -> str:
        return f"r={self.r}, scaling={self.scaling:g}"


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_scratch_lora(model: nn.Module, target_regex: str, *, r: int, alpha: float, dropout: float,
                       train_modules: Sequence[str], use_rslora: bool = False) -> nn.Module:
    """Freeze `model`, wrap every nn.Linear whose full name matches `target_regex` in a LoRALinear (in place), and
    make the modules in `train_modules` (a name or a dotted suffix of one, e.g. 'pooler' for 'bert.pooler') train
    in full. Returns the model."""
    train_paths = []
    for wanted in train_modules:
        found = module_paths(model, wanted)
        if not found:
            raise ValueError(f"no module named {wanted!r} to train in full")
        train_paths.extend(found)

    # Like PEFT, nothing inside a fully trained module gets an adapter: it would be redundant, and unfreezing the
    # module would unfreeze the adapter's base weight too.
    targets = {name: module for name, module in model.named_modules()
               if name and re.fullmatch(target_regex, name) and not within(name, train_paths)}
    if not targets:
        raise ValueError(f"no module of {type(model).__name__} matches the LoRA target pattern '{target_regex}'")
    not_linear = {name: type(module).__name__ for name, module in targets.items() if type(module) is not nn.Linear}
    if not_linear:
        # PEFT refuses unsupported module types too. The exact-type check also turns away nn.Linear subclasses
        # such as bitsandbytes' 4-bit linear, whose packed weight this class cannot merge into.
        raise ValueError(f"LoRA targets must be torch.nn.Linear; '{target_regex}' also matches {not_linear}")

    model.requires_grad_(False)
    for name, module in targets.items():
        _replace(model, name, LoRALinear(module, r, alpha, dropout, use_rslora))
    for path in train_paths:
        model.get_submodule(path).requires_grad_(True)
    return model


def merge_scratch_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its linear (W + scaling * B A), in place, so the model is a plain transformers
    model again: save_pretrained writes the original parameter names and from_pretrained needs no ftlab."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            _replace(model, name, module.merged())
    return model
