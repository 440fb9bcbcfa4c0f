"""Training FLOPs of a classifier, counted from the model's own layers: what `bench` divides by time and what a
learning curve's cost axis counts, for the model families it covers (others: n/a). Light on import: transformers
loads when a model is counted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ftlab import methods


@dataclass(frozen=True)
class FlopsModel:
    """Forward FLOPs of a classifier's body, from the model's own layers (ftlab.models.architectures).

    Per token: 2 FLOPs per multiply-add of every linear layer outside the head (each block's, times the number of
    layers it runs: ALBERT runs one shared block num_hidden_layers times), so grouped-query attention's narrow
    key/value, gated MLPs' three linears and fused QKV layers all count by their real shapes; a mixture of experts'
    expert stacks num_experts_per_tok times (the experts a token is routed to) and its routers; plus attention's
    two matmuls (scores and their weighted sum), 2·T·(heads·head_dim) multiply-adds per token and attention (an
    encoder-decoder's decoder attends twice: to itself and to the encoder), full T x T also for causal models (what
    SDPA computes). Embeddings, the head and LoRA adapters are left out (under 1%). Families whose blocks compute
    otherwise have no FLOPs model (`unmodelled`). tests/test_families.py checks it against
    torch.utils.flop_counter.FlopCounterMode for every tested family it models."""
    linear_flops_per_token: float
    attention_width: float  # sum over attentions of heads x (query-key width + value width) / 2

    def forward_flops_per_sample(self, tokens: float) -> float:
        return tokens * (self.linear_flops_per_token + 4.0 * tokens * self.attention_width)


def unmodelled(model: Any, arch: Any) -> Optional[str]:
    """Why the FLOPs model does not cover a classifier (its skeleton and Architecture), in words; None where it
    does: blocks made of linear layers, expert stacks and softmax attention."""
    import torch

    if not arch.blocks:
        return arch.no_blocks()
    tensors = [path for paths in arch.parameters.values() for path in paths if path not in arch.experts]
    if tensors:
        return f"its attention computes with weight tensors ({', '.join(sorted(set(tensors)))}) and relative positions"
    convolutions = sorted({type(module).__name__ for path in arch.blocks
                           for module in model.get_submodule(path).modules()
                           if isinstance(module, torch.nn.modules.conv._ConvNd)})
    if convolutions:
        return f"its blocks compute with convolutions ({', '.join(convolutions)})"
    return None


def flops_model(location: str, trust_remote_code: bool = False) -> Optional[FlopsModel]:
    """The FlopsModel of the model in `location` (a directory or hub id), built on the meta device: no weights. None
    for a family the model does not cover (`unmodelled`): its FLOPs show as n/a."""
    import torch
    from transformers import AutoConfig
    from transformers.pytorch_utils import Conv1D

    from ftlab.models.architectures import discover, skeleton

    config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code)
    model = skeleton(config, trust_remote_code)
    arch = discover(model)
    if unmodelled(model, arch):
        return None
    layers = config.num_hidden_layers
    lists = [model.get_submodule(path) for path in arch.blocks]
    # Times each block runs per token: once, or for one list of shared blocks (ALBERT) layers / blocks times.
    repeats = layers // len(lists[0]) if len(lists) == 1 and len(lists[0]) < layers else 1
    runs = {f"{path}.{index}.{name}": repeats for path, blocks in zip(arch.blocks, lists)
            for index, block in enumerate(blocks) for name, _ in block.named_modules()}
    body = set(arch.body_linears)
    flops = 0.0
    for name, module in model.named_modules():
        if name in body:
            in_features, out_features = module.weight.shape[::-1] if not isinstance(module, Conv1D) \
                else module.weight.shape
            flops += 2.0 * in_features * out_features * runs.get(name, 1)
    routed = getattr(config, "num_experts_per_tok", 1)
    for blocks in lists:
        for block in blocks:
            experts = {path: param for path, param in block.named_parameters() if path in arch.experts}
            flops += sum(2.0 * param[0].numel() * routed for param in experts.values())
            # A router's own weight (a linear router is among the body's linears).
            routers = [block.get_submodule(path) for path in arch.routers if path in dict(block.named_modules())]
            flops += sum(2.0 * router.weight.numel() for router in routers
                         if not isinstance(router, torch.nn.Linear) and getattr(router, "weight", None) is not None)
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    # DeepSeek's latent attention: queries and keys are wider than values.
    width = heads * ((getattr(config, "qk_head_dim", None) or head_dim) + (getattr(config, "v_head_dim", None)
                                                                             or head_dim)) / 2
    attentions = len(lists[0]) + 2 * len(lists[1]) if arch.encoder_decoder else layers
    return FlopsModel(linear_flops_per_token=flops, attention_width=attentions * width)


def training_flops(method: str, model: Optional[FlopsModel], mean_tokens: float, samples: float) -> Optional[float]:
    """FLOPs of training on `samples` texts (rows x epochs) of `mean_tokens` real tokens each with `method`; None
    without a FLOPs model."""
    if model is None:
        return None
    # Work per sample relative to one forward pass: each method's own (ftlab.methods.base.Method.passes).
    return methods.get(method).passes * samples * model.forward_flops_per_sample(mean_tokens)
