"""Method `scratch_lora`: LoRA written out by hand (the layer is in .layer), with PEFT's defaults, so that the same
weights give the same logits and gradients as `lora` (tests/test_scratch_lora.py). It exists to show what LoRA is
and to check PEFT against an independent implementation; its layer loads torch, so it is imported when applied."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ftlab.errors import ConfigError
from ftlab.methods.base import TARGET_FLAGS, ApplyContext, Method
from ftlab.methods.targets import resolve_targets, target_pattern, within


@dataclass(frozen=True)
class ScratchLora(Method):
    def check(self, model: Any, args: Any, arch: Any) -> None:
        import torch

        targets = resolve_targets(model, arch, args, self.name)
        trained = () if args.lora_head else arch.head
        # The layer wraps torch.nn.Linear exactly: transformers' Conv1D (GPT-2) stores its weight transposed, and
        # subclasses (Falcon's FalconLinear, bitsandbytes' 4-bit linear) may compute otherwise than the weight says.
        other = sorted({type(model.get_submodule(name)).__name__ for name in targets.modules
                        if not within(name, trained) and type(model.get_submodule(name)) is not torch.nn.Linear})
        if other:
            raise ConfigError(f"--method {self.name} wraps torch.nn.Linear layers; {arch.model_type}'s targets are "
                              f"{', '.join(other)}: use --method lora (PEFT handles them)")

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        from ftlab.methods.scratch_lora.layer import apply_scratch_lora

        self.check(model, args, context.arch)
        return apply_scratch_lora(model, target_pattern(context.arch, args), r=args.lora_r, alpha=args.lora_alpha,
                                  dropout=args.lora_dropout, use_rslora=args.use_rslora,
                                  train_modules=() if args.lora_head else context.arch.head)

    def merge(self, model: Any) -> Any:
        from ftlab.methods.scratch_lora.layer import merge_scratch_lora

        return merge_scratch_lora(model)

    def describe(self, args: Mapping[str, Any]) -> str:
        return f"{self.name} r={args['lora_r']} α={args['lora_alpha']:g}"


METHODS = (
    ScratchLora(name="scratch_lora", label="LoRA (by hand)", merges=True,
                trains="as lora, with the lab's own LoRA layer instead of PEFT's, on torch.nn.Linear layers only "
                       "(expert stacks, Conv1D and Linear subclasses are refused in one line)",
                flags=("lora_r", "lora_alpha", "lora_dropout", *TARGET_FLAGS, "use_rslora"),
                search_space={"lora_r": "4,8,16,32"}, default_lr=5e-4, lr_range=(5e-5, 5e-3),
                lr_source="lora's, which it equals"),
)
