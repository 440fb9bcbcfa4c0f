"""Training FLOPs of a classifier, counted from the model's own layers: what `bench` divides by time and what a
learning curve's cost axis counts, for every model family. Light on import: transformers loads when a model is
counted."""
from __future__ import annotations

from dataclasses import dataclass

from ftlab import methods



@dataclass(frozen=True)
class FlopsModel:
    """Forward FLOPs of a classifier's body, from the model's own layers (ftlab.models.architectures).

    Per token: 2 FLOPs per multiply-add of every linear layer outside the head (each block's, times the number of
    layers it runs: ALBERT runs one shared block num_hidden_layers times), so grouped-query attention's narrow
    key/value, gated MLPs' three linears and fused QKV layers all count by their real shapes; plus attention's two
    matmuls (scores and their weighted sum), 2·T·(heads·head_dim) multiply-adds per token and layer, full T x T
    also for causal models (what SDPA computes). Embeddings, the head and LoRA adapters are left out (under 1%).
    tests/test_families.py checks it against torch.utils.flop_counter.FlopCounterMode for every tested family."""
    linear_flops_per_token: float
    attention_width: int  # sum over layers of heads x head_dim

    def forward_flops_per_sample(self, tokens: float) -> float:
        return tokens * (self.linear_flops_per_token + 4.0 * tokens * self.attention_width)


def flops_model(location: str, trust_remote_code: bool = False) -> FlopsModel:
    """The FlopsModel of the model in `location` (a directory or hub id), built on the meta device: no weights."""
    from transformers import AutoConfig
    from transformers.pytorch_utils import Conv1D

    from ftlab.models.architectures import discover, skeleton

    config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    model = skeleton(config, trust_remote_code)
    arch = discover(model)
    layers = config.num_hidden_layers
    blocks = model.get_submodule(arch.blocks) if arch.blocks else []
    # Times each block runs per token: once, or for a list of shared blocks (ALBERT) layers / blocks times.
    repeats = layers // len(blocks) if 0 < len(blocks) < layers else 1
    runs = {f"{arch.blocks}.{index}.{name}": repeats for index, block in enumerate(blocks)
            for name, _ in block.named_modules()}
    body = set(arch.body_linears)
    flops = 0.0
    for name, module in model.named_modules():
        if name in body:
            in_features, out_features = module.weight.shape[::-1] if not isinstance(module, Conv1D) \
                else module.weight.shape
            flops += 2.0 * in_features * out_features * runs.get(name, 1)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return FlopsModel(linear_flops_per_token=flops, attention_width=layers * heads * head_dim)


def training_flops(method: str, model: FlopsModel, mean_tokens: float, samples: float) -> float:
    """FLOPs of training on `samples` texts (rows x epochs) of `mean_tokens` real tokens each with `method`."""
    # Work per sample relative to one forward pass: each method's own (ftlab.methods.base.Method.passes).
    return methods.get(method).passes * samples * model.forward_flops_per_sample(mean_tokens)
