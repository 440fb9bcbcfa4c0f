"""Attention in fp32 inside CPU bf16 autocast.

Under bf16 autocast the query, key and value come out of the linears in bf16, and PyTorch's fused CPU attention
kernel is slower in bf16 than in fp32 on the CPUs this was measured on, mostly in backward, so the three inputs
are cast to fp32 for the attention alone (scripts/bench_attention.py times it per length; the figures and the
accuracy check over seeds are in docs/studies/speed.md and docs/studies/cpu-defaults.md), and with them every other
floating input: a float mask (T5 adds its position bias to the mask, in bf16 under autocast), which SDPA wants in the
query's dtype. The linears, where bf16 pays, stay in bf16. The result is cast back, so the rest of the model sees
what it saw before.

It is a transformers attention function (AttentionInterface), selected per model, so nothing global changes and
saved configs do not name it (transformers does not serialise the attention implementation). CUDA is left alone:
its flash kernels are fastest in bf16.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

FP32_SDPA = "ftlab_sdpa_fp32"


def _sdpa_in_fp32(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: Optional[torch.Tensor], **kwargs: Any) -> tuple[torch.Tensor, Any]:
    dtype = query.dtype
    if dtype == torch.float32 or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    with torch.autocast("cpu", enabled=False):
        output, weights = sdpa_attention_forward(module, _fp32(query), _fp32(key), _fp32(value),
                                                 _fp32(attention_mask),
                                                 **{name: _fp32(value) for name, value in kwargs.items()})
    return output.to(dtype), weights


def _fp32(value: Any) -> Any:
    """A floating tensor in fp32; anything else (a boolean mask, a scale, None) as it is."""
    return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


AttentionInterface.register(FP32_SDPA, _sdpa_in_fp32)
# The padding mask is built per attention implementation: without SDPA's own mask function registered under the
# new name, transformers passes no mask at all and padded tokens are attended to.
AttentionMaskInterface.register(FP32_SDPA, sdpa_mask)


def use_fp32_attention(model: PreTrainedModel, precision: str) -> str:
    """Switch `model` (before PEFT wraps it) to fp32 attention when it trains in bf16 on CPU and uses SDPA; the
    attention implementation it ends with, for the record."""
    current = model.config._attn_implementation
    if precision == "bf16" and current == "sdpa" and not torch.cuda.is_available():
        model.set_attn_implementation(FP32_SDPA)
        return "sdpa, fp32 inside bf16 autocast"
    return current
