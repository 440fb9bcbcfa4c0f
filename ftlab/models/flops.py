"""Training FLOPs counted from a model's shape: what `bench` reports as useful work and `curve` as a point's cost.

Moved here from the bench command so that the analysis (a lower layer than bench) counts FLOPs the same way."""
from __future__ import annotations

# Work per sample relative to one forward pass: full fine-tuning needs the backward pass for activations and
# for weights (2x forward); adapters skip the frozen weights' gradients but still backpropagate through every
# block; head-only training never backpropagates into the encoder.
PASSES = {"full": 3.0, "selective": 3.0, "lora": 2.0, "qlora": 2.0, "scratch_lora": 2.0, "head": 1.0}


def forward_flops_per_sample(layers: int, hidden: int, ffn: int, tokens: float) -> float:
    """Encoder forward FLOPs for one text of `tokens` real tokens: per block and token, the q/k/v/output
    projections (4·d²) and the two MLP linears (2·d·f) multiply-adds, plus attention scores and their weighted
    sum (2·T·d); 2 FLOPs per multiply-add. Embeddings, head and LoRA adapters are left out (under 1%)."""
    return 2.0 * layers * tokens * (4 * hidden**2 + 2 * hidden * ffn + 2 * tokens * hidden)


def model_dims(location: str) -> tuple[int, int, int]:
    """(blocks, hidden size, feed-forward size) from the model's config. transformers' attribute maps give every
    family num_hidden_layers and hidden_size (gpt2's n_layer, n_embd); the feed-forward width is intermediate_size,
    DistilBERT's hidden_dim or GPT-2's n_inner, and 4 x hidden where a config leaves it unset (GPT-2's rule)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(location)
    ffn = next((value for value in (getattr(config, name, None) for name in ("intermediate_size", "hidden_dim",
                                                                              "n_inner")) if value), None)
    return config.num_hidden_layers, config.hidden_size, ffn or 4 * config.hidden_size


def training_flops(method: str, dims: tuple[int, int, int], mean_tokens: float, samples: float) -> float:
    """FLOPs of training on `samples` texts (rows x epochs) of `mean_tokens` real tokens each with `method`."""
    layers, hidden, ffn = dims
    return PASSES[method] * samples * forward_flops_per_sample(layers, hidden, ffn, mean_tokens)
