"""PEFT's prompt learning: trained vectors that the frozen model reads before the text's own tokens. Prompt tuning
(Lester et al. 2021) learns the virtual tokens' embeddings; P-tuning (Liu et al. 2021) produces them with a small
prompt encoder; prefix tuning (Li & Liang 2021) learns keys and values for every layer, which PEFT hands to the
model as a key-value cache, so only models that take one (decoder LMs) can have it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ftlab.errors import ConfigError
from ftlab.methods.peft_method import PeftMethod


@dataclass(frozen=True)
class PromptMethod(PeftMethod):
    needs_cache: bool = False

    def check(self, model: Any, args: Any, arch: Any) -> None:
        if self.needs_cache and not arch.decoder:
            raise ConfigError(f"--method {self.name}: PEFT hands the trained prefix to the model as a key-value "
                              f"cache, which {arch.model_type} (an encoder) does not take; use prompt_tuning or "
                              f"p_tuning on encoders")

    def describe(self, args: Mapping[str, Any]) -> str:
        return f"{self.name} {args.get('num_virtual_tokens')} tokens"


_PROMPT = dict(peft_flags={"num_virtual_tokens": "num_virtual_tokens"}, targets=None, task_type="SEQ_CLS",
               flag_defaults={}, search_space={"num_virtual_tokens": "10,20,50"})
METHODS = (
    PromptMethod(name="prompt_tuning", label="prompt tuning", peft_type="PROMPT_TUNING",
                 config=("tuners/prompt_tuning/config.py", "PromptTuningConfig"),
                 trains="the embeddings of --num_virtual_tokens virtual tokens before the text, and the head",
                 default_lr=1e-2, lr_range=(1e-3, 1e-1),
                 lr_source="Lester et al. 2021 (0.3 with Adafactor on T5); with AdamW and a trained head, lower",
                 **_PROMPT),
    PromptMethod(name="p_tuning", label="P-tuning", peft_type="P_TUNING",
                 config=("tuners/p_tuning/config.py", "PromptEncoderConfig"),
                 trains="a prompt encoder (an MLP) producing --num_virtual_tokens virtual tokens, and the head",
                 default_lr=1e-3, lr_range=(1e-4, 1e-2), lr_source="peft's P-tuning classification example (1e-3)",
                 **_PROMPT),
    PromptMethod(name="prefix_tuning", label="prefix tuning", peft_type="PREFIX_TUNING",
                 config=("tuners/prefix_tuning/config.py", "PrefixTuningConfig"), needs_cache=True,
                 trains="keys and values of --num_virtual_tokens prefix positions in every layer (decoder LMs), and "
                 "the head", default_lr=1e-2, lr_range=(1e-3, 1e-1), lr_source="Li & Liang 2021 (5e-5..8e-5 for "
                 "GPT-2 generation with a reparametrisation; without it, peft's examples use 1e-2)", **_PROMPT),
)
