"""A method that is one of PEFT's tuners: its config class (read from peft, `PEFT_TYPE_TO_CONFIG_MAPPING`), filled
with the lab's shared flags (rank, alpha, dropout under each method's own field names), its targets from the
architecture map, the head trained in full, and any other field of the class through --peft_args."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ftlab.errors import ConfigError
from ftlab.methods.base import TARGET_FLAGS, ApplyContext, Method
from ftlab.methods.peft_fields import MISSING, check_peft_args, class_fields
from ftlab.methods.targets import common_width, head_leaves, norm_paths, paths_regex, resolve_targets

# Fields of every PEFT config that the lab sets itself, and from what.
FRAMEWORK = {"task_type": "the task (sequence classification)", "peft_type": "--method",
             "base_model_name_or_path": "--model", "revision": "--model", "inference_mode": "training",
             "auto_mapping": "--model", "peft_version": "the installed peft",
             "target_modules": "--lora_target_modules or the --lora_<module> switches",
             "modules_to_save": "the head, which trains in full",
             "fan_in_fan_out": "the layer type (transformers' Conv1D stores its weight transposed)"}
LINEAR, NORMS = "linear", "norms"  # what a method's targets are


@dataclass(frozen=True)
class PeftMethod(Method):
    """peft_type: PeftType's member name. config: (file under the peft package, class) of its config, read without
    importing peft. peft_flags: lab flag -> the config field it sets. targets: LINEAR (the target layers), NORMS
    (the normalisation layers) or None. fixed: fields the lab always sets. feedforward: the field that gets the
    MLP switch's layers (IA3 scales their inputs). sized: (field, limit): set to the largest power of two up to
    the limit that divides every target layer's widths (VB-LoRA's vector length, C3A's block size). budget: a
    field counting entries of each target's weight (FourierFT's spectral coefficients), at most its size."""
    config: tuple[str, str] = ("", "")
    peft_flags: Mapping[str, str] = field(default_factory=dict)
    targets: Optional[str] = LINEAR
    fixed: Mapping[str, Any] = field(default_factory=dict)
    feedforward: Optional[str] = None
    sized: Optional[tuple[str, int]] = None
    task_type: Optional[str] = None  # PEFT's TaskType name; None: the plain PeftModel (see peft_config())
    linear_only: bool = False  # PEFT's layer takes torch.nn.Linear only, though its config has fan_in_fan_out
    plain_linear: bool = False  # PEFT's layer refuses subclasses of torch.nn.Linear (Falcon's FalconLinear)
    budget: Optional[str] = None
    adapter: bool = True

    def __post_init__(self) -> None:
        targets = TARGET_FLAGS if self.targets == LINEAR else ()
        object.__setattr__(self, "flags", (*self.flags, *self.peft_flags, *targets, "peft_args"))

    def fields(self) -> tuple:
        return class_fields(*self.config)

    def reserved(self) -> dict[str, str]:
        """--peft_args keys the lab sets from elsewhere: field -> the flag (or reason) that sets it."""
        reserved = {**FRAMEWORK, **{name: f"--{flag}" for flag, name in self.peft_flags.items()}}
        if self.feedforward:
            reserved[self.feedforward] = "--lora_mlp (the MLP layers among the targets)"
        return reserved

    def check_args(self, args: Any) -> None:
        """Before anything loads: --peft_args against the config class's fields."""
        check_peft_args(self.name, self.fields(), args.peft_args or {}, self.reserved())

    def default(self, flag: str, general: Any) -> Any:
        if flag in self.flag_defaults:
            return self.flag_defaults[flag]
        if flag in self.peft_flags:
            own = next((f.default for f in self.fields() if f.name == self.peft_flags[flag]), MISSING)
            if own is not MISSING and own is not None:
                return own
        return general

    def check(self, model: Any, args: Any, arch: Any) -> None:
        if self.targets != LINEAR:
            return
        targets = resolve_targets(model, arch, args, self.name).modules
        conv1d = sorted({path.rsplit(".", 1)[-1] for path in targets
                         if type(model.get_submodule(path)).__name__ == "Conv1D"})
        if conv1d and (self.linear_only or "fan_in_fan_out" not in {f.name for f in self.fields()}):
            raise ConfigError(f"--method {self.name}: PEFT's {self.label} adapts torch.nn.Linear layers; "
                              f"{arch.model_type}'s {', '.join(conv1d)} are transformers Conv1D layers (use lora, "
                              f"ia3 or vera there)")
        subclasses = sorted({type(model.get_submodule(path)).__name__ for path in targets
                             if type(model.get_submodule(path)).__name__ not in ("Linear", "Conv1D")})
        if subclasses and self.plain_linear:
            raise ConfigError(f"--method {self.name}: PEFT's {self.label} adapts plain torch.nn.Linear layers; "
                              f"{arch.model_type}'s targets are {', '.join(subclasses)} (use lora there)")
        if self.budget:
            given = (args.peft_args or {}).get(self.budget)
            count = given if given is not None else next(f.default for f in self.fields() if f.name == self.budget)
            for path in targets:
                weight = model.get_submodule(path).weight
                if weight.numel() < count:
                    raise ConfigError(f"--method {self.name}: {self.budget} {count} is more than the {weight.numel()} "
                                      f"weights of {arch.model_type}'s {path} ({' x '.join(map(str, weight.shape))}); "
                                      f"set a smaller one with --peft_args, or leave such layers out with the "
                                      f"--lora_<module> switches")

    def config_kwargs(self, model: Any, args: Any, arch: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {name: getattr(args, flag) for flag, name in self.peft_flags.items()}
        kwargs.update(self.fixed)
        if self.targets == LINEAR:
            resolved = resolve_targets(model, arch, args, self.name)
            targets = resolved.modules
            kwargs["target_modules"] = resolved.pattern
            if any(type(model.get_submodule(path)).__name__ == "Conv1D" for path in targets):
                kwargs["fan_in_fan_out"] = True
            if self.feedforward:
                mlp = arch.target_regex(("mlp",)) if arch.blocks and arch.layers["mlp"] else None
                kwargs[self.feedforward] = [path for path in targets if mlp and re.fullmatch(mlp, path)]
            if self.sized:
                kwargs[self.sized[0]] = common_width(model, targets, self.sized[1])
        elif self.targets == NORMS:
            norms = norm_paths(model, arch.head)
            if not norms:
                raise ConfigError(f"--method {self.name}: {arch.model_type} has no normalisation layer outside its "
                                  f"head to tune")
            kwargs["target_modules"] = paths_regex(norms)
        # Head modules as the task type needs them: see peft_config() for why the tuners without one list the
        # head's layers one by one; PEFT's sequence-classification wrapper adds its own "classifier" module whole,
        # and a layer inside it listed too would train a copy that the forward pass never reads.
        kwargs["modules_to_save"] = list(arch.head) if self.task_type else head_leaves(model, arch.head)
        kwargs.update(args.peft_args or {})
        return kwargs

    def peft_config(self, model: Any, args: Any, arch: Any) -> Any:
        from peft import TaskType
        from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
        from peft.utils import PeftType

        config_class = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[str(self.peft_type)]]
        # No task type for tuners of target layers: PEFT's sequence-classification wrapper would add the head module
        # "classifier" to modules_to_save whole, and for a head made of several layers (RoBERTa's) the tuners other
        # than LoRA then fail to merge (their module replacement reads `.weight` of the wrapped module). The head's
        # layers are listed one by one instead (head_leaves).
        task = TaskType[self.task_type] if self.task_type else None
        try:
            return config_class(task_type=task, **self.config_kwargs(model, args, arch))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--method {self.name}: PEFT refuses the configuration: "
                              f"{str(exc).splitlines()[0]}") from None

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        from peft import get_peft_model

        try:
            return get_peft_model(self.wrap_base(model), self.peft_config(model, args, context.arch))
        except (TypeError, ValueError) as exc:
            # Raised inside PEFT for a model it cannot adapt this way (sizes that do not divide, a family it
            # does not support): the user's to change, so one line.
            raise ConfigError(f"--method {self.name}: PEFT cannot apply it to {context.arch.model_type}: "
                              f"{str(exc).splitlines()[0]}") from None

    def describe(self, args: Mapping[str, Any]) -> str:
        shown = [f"{name}={args[flag]:g}" if isinstance(args.get(flag), float) else f"{name}={args.get(flag)}"
                 for flag, name in self.peft_flags.items() if flag in ("lora_r", "num_virtual_tokens")]
        return " ".join([self.name, *shown])
