"""The methods that train a subset of the model's own weights, with no added parameters: every weight (full), the
head (head), the last blocks and the head (selective), the biases and the head (bitfit). The lab's own code: they
only decide requires_grad."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ftlab.errors import ConfigError
from ftlab.methods.base import ApplyContext, Method
from ftlab.methods.targets import module_paths, within


def train_only(model: Any, module_names: tuple[str, ...]) -> None:
    """Freeze `model`, then unfreeze the modules named (a full path or a dotted suffix of one)."""
    model.requires_grad_(False)
    for name in module_names:
        matches = module_paths(model, name)
        if len(matches) != 1:
            raise ValueError(f"expected one module named {name!r}, found {matches or 'none'}")
        model.get_submodule(matches[0]).requires_grad_(True)


@dataclass(frozen=True)
class Full(Method):
    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        model.requires_grad_(True)
        return model


@dataclass(frozen=True)
class Head(Method):
    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        train_only(model, context.arch.head)
        return model


@dataclass(frozen=True)
class Selective(Method):
    """The last --unfreeze_layers blocks of each block list train: an encoder-decoder's top encoder blocks and top
    decoder blocks."""

    def check(self, model: Any, args: Any, arch: Any) -> None:
        if not arch.blocks:
            raise ConfigError(f"--method {self.name}: model type {arch.model_type!r}: {arch.no_blocks()}; use "
                              f"--method lora with --lora_target_modules, or full")
        for path in arch.blocks:
            blocks = model.get_submodule(path)
            if args.unfreeze_layers > len(blocks):
                layers = getattr(model.config, "num_hidden_layers", len(blocks))
                shared = f" ({layers} layers share their weights)" if layers > len(blocks) else ""
                where = f" in {path}" if len(arch.blocks) > 1 else ""
                raise ConfigError(f"--unfreeze_layers {args.unfreeze_layers}: the model has only {len(blocks)} "
                                  f"transformer blocks{where}{shared}")

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        self.check(model, args, context.arch)
        train_only(model, context.arch.head)
        for path in context.arch.blocks:
            for block in list(model.get_submodule(path))[-args.unfreeze_layers:]:
                block.requires_grad_(True)
        return model

    def describe(self, args: Mapping[str, Any]) -> str:
        return f"{self.name} ({args['unfreeze_layers']} blocks)"


def bias_names(model: Any, head: tuple[str, ...]) -> list[str]:
    """The bias terms outside the head: of every linear, normalisation and embedding layer that has one."""
    return [name for name, _ in model.named_parameters()
            if name.rsplit(".", 1)[-1] == "bias" and not within(name.rsplit(".", 1)[0], head)]


@dataclass(frozen=True)
class BitFit(Method):
    """BitFit (Ben Zaken et al. 2022): only the bias terms train, with the head."""

    def check(self, model: Any, args: Any, arch: Any) -> None:
        if not bias_names(model, arch.head):
            raise ConfigError(f"--method {self.name}: model type {arch.model_type!r} has no bias terms outside its "
                              f"head (its linears and norms are bias-free), so BitFit would train the head only: use "
                              f"--method head")

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        self.check(model, args, context.arch)
        train_only(model, context.arch.head)
        parameters = dict(model.named_parameters())
        for name in bias_names(model, context.arch.head):
            parameters[name].requires_grad_(True)
        return model


METHODS = (
    Full(name="full", label="full fine-tuning", trains="every weight", aliases=("fft",), default_lr=5e-5,
         lr_range=(1e-5, 3e-4), lr_source="BERT's fine-tuning range (Devlin et al. 2019: 2e-5..5e-5)", passes=3.0),
    Head(name="head", label="head only", trains="the classification head only", aliases=("cls",),
         default_lr=1e-3, lr_range=(1e-4, 1e-1), lr_source="a linear probe on frozen features", passes=1.0),
    Selective(name="selective", label="last blocks",
              trains="the last --unfreeze_layers blocks (of the encoder and of the decoder in an encoder-decoder) and "
                     "the head",
              flags=("unfreeze_layers",), search_space={"unfreeze_layers": "1,2,3"}, default_lr=1e-4,
              lr_range=(1e-5, 1e-3), lr_source="between full fine-tuning's and the head's", passes=3.0),
    BitFit(name="bitfit", label="BitFit", trains="every bias term and the head", default_lr=1e-3,
           lr_range=(1e-4, 1e-2), lr_source="Ben Zaken et al. 2022 (1e-4..1e-3 on GLUE with BERT)"),
)
