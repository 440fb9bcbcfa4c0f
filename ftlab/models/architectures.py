"""Per-architecture module names: which linear layers LoRA targets, and which modules form the head."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from ftlab.config.schema import LORA_SWITCHES
from ftlab.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    # Module paths inside one transformer block, per LoRA switch.
    query: str
    key: str
    value: str
    projection: str
    mlp: tuple[str, ...]
    # Top-level modules of the classification head (trained by `head`, saved in full by LoRA).
    head: tuple[str, ...]
    # The head's linear layers by full module path (targets of --lora_head).
    head_linears: tuple[str, ...]
    # Path of the ModuleList of transformer blocks (selective fine-tuning unfreezes the last ones).
    blocks: str
    # Path of the module that runs those blocks and returns the last layer's token states, before any pooling
    # (mean pooling replaces its first-token output, ftlab.models.pooling).
    encoder: str
    # The config attributes holding the dropout on attention probabilities (--attention_dropout) and on the hidden
    # states (--hidden_dropout).
    attention_dropout: str = "attention_probs_dropout_prob"
    hidden_dropout: str = "hidden_dropout_prob"

    def block_targets(self, switches: tuple[str, ...] = LORA_SWITCHES) -> list[str]:
        targets: list[str] = []
        for switch in switches:
            value = getattr(self, switch)
            targets.extend(value if isinstance(value, tuple) else [value])
        return targets

    def target_regex(self, switches: tuple[str, ...] = LORA_SWITCHES, include_head: bool = False) -> str:
        """A full-match pattern for PEFT's target_modules. A suffix list would be ambiguous for BERT, where
        'output.dense' is also the tail of 'attention.output.dense'; anchoring on 'layer.<n>.' is exact."""
        patterns = []
        if switches:
            alternatives = "|".join(re.escape(t) for t in self.block_targets(switches))
            patterns.append(rf".*\.layer\.\d+\.(?:{alternatives})")
        if include_head:
            patterns.extend(rf"(?:.*\.)?{re.escape(name)}" for name in self.head_linears)
        return "|".join(f"(?:{p})" for p in patterns)


def names_regex(names: list[str]) -> str:
    """Full-match pattern for modules whose path ends with one of `names` (PEFT's suffix rule for a list)."""
    return rf"(?:.*\.)?(?:{'|'.join(re.escape(n) for n in names)})"


_BERT_LIKE = dict(query="attention.self.query", key="attention.self.key", value="attention.self.value",
                  projection="attention.output.dense", mlp=("intermediate.dense", "output.dense"))

ARCHITECTURES: dict[str, Architecture] = {
    "distilbert": Architecture(query="attention.q_lin", key="attention.k_lin", value="attention.v_lin",
                               projection="attention.out_lin", mlp=("ffn.lin1", "ffn.lin2"),
                               head=("pre_classifier", "classifier"), head_linears=("pre_classifier", "classifier"),
                               blocks="distilbert.transformer.layer", encoder="distilbert.transformer",
                               attention_dropout="attention_dropout", hidden_dropout="dropout"),
    "bert": Architecture(**_BERT_LIKE, head=("pooler", "classifier"), head_linears=("bert.pooler.dense", "classifier"),
                         blocks="bert.encoder.layer", encoder="bert.encoder"),
    # RoBERTa's head is classifier.dense + classifier.out_proj, one module; it has no pooler in use.
    "roberta": Architecture(**_BERT_LIKE, head=("classifier",),
                            head_linears=("classifier.dense", "classifier.out_proj"), blocks="roberta.encoder.layer",
                            encoder="roberta.encoder"),
}


# RoBERTa-style encoders number positions from pad_token_id + 1, so 514 position embeddings hold 512 tokens.
POSITION_OFFSET_TYPES = ("roberta", "xlm-roberta", "camembert")


def max_positions(config: dict) -> Optional[int]:
    """Tokens per text a model's learned absolute positions allow, from its config.json; None where the config
    sets no such limit (relative positions, or no max_position_embeddings)."""
    total = config.get("max_position_embeddings")
    if not isinstance(total, int) or config.get("position_embedding_type", "absolute") != "absolute":
        return None
    if config.get("model_type") in POSITION_OFFSET_TYPES:
        total -= int(config.get("pad_token_id") or 1) + 1
    return total


def architecture_of(model_type: str) -> Architecture:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise ConfigError(f"model type {model_type!r} has no module map; supported: "
                          f"{', '.join(ARCHITECTURES)}") from None


def module_paths(model: Any, suffix: str) -> list[str]:
    """The full paths of the modules of `model` named `suffix` or ending with it as a dotted suffix ('pooler' ->
    'bert.pooler'): how a head module or a module to train is named independently of the base model's prefix."""
    return [name for name, _ in model.named_modules() if name == suffix or name.endswith("." + suffix)]
