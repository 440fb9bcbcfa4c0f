"""Where a classifier's parts are, derived from the loaded model: the transformer blocks, the linear layers in
each block behind the LoRA switches, and the head (what lies outside the base model).

Light on import (no torch, no transformers): the run plan reads max_positions before anything heavy loads;
`discover` runs on a loaded model (or a meta-device skeleton of one)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from ftlab.errors import ConfigError
from ftlab.methods import SWITCHES as LORA_SWITCHES
from ftlab.methods.targets import within

if TYPE_CHECKING:  # this module stays importable without torch: the run plan's pre-flight reads max_positions
    import torch
    from transformers import PreTrainedConfig


ARCHITECTURE_HELP = ("name the layers for LoRA with --lora_target_modules (comma-separated module names as "
                     "print(model) shows them, e.g. q_proj,v_proj, or all-linear)")


@dataclass(frozen=True)
class Architecture:
    """Where things are in one loaded classifier, found by `discover` from the model itself."""
    model_type: str
    # Paths of the ModuleLists of transformer blocks (selective fine-tuning unfreezes the last ones of each): one, or
    # an encoder-decoder's two (its encoder's and its decoder's); none where no block list was found (then only
    # --lora_target_modules can name LoRA's layers).
    blocks: tuple[str, ...]
    # Per LoRA switch, the linear layers inside a block that serve it, as paths relative to the block (over every
    # block: DeepSeek's first blocks have a dense MLP, the others experts; a decoder block has cross-attention).
    layers: Mapping[str, tuple[str, ...]]
    # Layers that serve several switches at once (ModernBERT's attn.Wqkv, GPT-2's attn.c_attn: query, key and
    # value in one matrix), relative path -> the switches.
    fused: Mapping[str, tuple[str, ...]]
    # Modules of the classification head by full path (trained by `head`, saved in full by LoRA, never quantised).
    head: tuple[str, ...]
    # The head's linear layers by full path (targets of --lora_head).
    head_linears: tuple[str, ...]
    # Every linear layer outside the head by full path (--lora_target_modules all-linear).
    body_linears: tuple[str, ...]
    # Path of the module that runs the blocks and returns the token states the head reads (its output's
    # last_hidden_state), before any pooling (ftlab.models.pooling hooks it).
    encoder: str
    # Block layers that are transformers' Conv1D (GPT-2): a Linear with its weight transposed.
    conv1d: tuple[str, ...] = ()
    # A decoder LM (causal attention): its own classifier reads the last real token, not the first.
    decoder: bool = False
    # An encoder-decoder (BART, T5): its head reads the decoder's state at the text's EOS token.
    encoder_decoder: bool = False
    # Per LoRA switch, the block weights that are parameters rather than layers, relative to the block: mixture-of-
    # experts' 3-D expert stacks (MLP), XLNet's attention tensors.
    parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Which of those are expert stacks (experts x out x in, applied per expert: PEFT's target_parameters adapts them).
    experts: tuple[str, ...] = ()
    # Mixture-of-experts routers in the blocks (relative paths): no switch serves them, so the methods with targets
    # leave them as they are; full and selective train them.
    routers: tuple[str, ...] = ()
    # Where no block list was found because the layer list mixes block classes (Jamba's Mamba and attention layers):
    # the list and its classes, for the error that says so.
    mixed: Optional[str] = None

    def no_blocks(self) -> str:
        """Why the model has no block list, in words."""
        if self.mixed:
            return f"its layer list {self.mixed} mixes block classes (no layer is common to its blocks)"
        return "no list of transformer blocks found"

    def block_regex(self, paths: Sequence[str]) -> str:
        """A full-match pattern for the `paths` (relative to a block) in every block of every block list."""
        lists = "|".join(re.escape(blocks) for blocks in self.blocks)
        alternatives = "|".join(re.escape(path) for path in paths)
        return rf"(?:.*\.)?(?:{lists})\.\d+\.(?:{alternatives})"

    def block_targets(self, switches: tuple[str, ...] = LORA_SWITCHES) -> list[str]:
        """The block layers behind `switches`; a fused layer only with all of its switches."""
        for layer, served in self.fused.items():
            on = [switch for switch in served if switch in switches]
            if on and len(on) < len(served):
                off = [switch for switch in served if switch not in switches]
                raise ConfigError(f"--lora_{off[0]} false: {self.model_type}'s {layer} computes "
                                  f"{', '.join(served)} in one layer; switch --lora_{', --lora_'.join(served)} on "
                                  f"or off together, or name layers with --lora_target_modules")
        targets: list[str] = []
        for switch in switches:
            targets.extend(layer for layer in self.layers[switch] if layer not in targets)
        return targets

    def parameter_targets(self, switches: tuple[str, ...] = LORA_SWITCHES) -> list[str]:
        """The block parameters behind `switches` (relative to a block)."""
        return [path for switch in switches for path in self.parameters.get(switch, ())]

    def target_regex(self, switches: tuple[str, ...] = LORA_SWITCHES, include_head: bool = False) -> Optional[str]:
        """A full-match pattern for PEFT's target_modules; None where the switches name parameters only (a
        mixture-of-experts' MLP). A suffix list would be ambiguous for BERT, where 'output.dense' is also the tail of
        'attention.output.dense'; anchoring on '<blocks>.<n>.' is exact."""
        patterns = []
        if switches:
            if not self.blocks:
                raise ConfigError(f"model type {self.model_type!r}: {self.no_blocks()}, so the --lora_<module> "
                                  f"switches have no layers; {ARCHITECTURE_HELP}")
            targets = self.block_targets(switches)
            if not targets and not self.parameter_targets(switches):
                raise ConfigError(f"model type {self.model_type!r}: no linear layer in its blocks "
                                  f"({', '.join(self.blocks)}) serves --lora_{', --lora_'.join(switches)}; "
                                  f"{ARCHITECTURE_HELP}")
            if targets:
                patterns.append(self.block_regex(targets))
        if include_head:
            patterns.extend(rf"(?:.*\.)?{re.escape(name)}" for name in self.head_linears)
        return "|".join(f"(?:{p})" for p in patterns) or None


# Leaf names of attention layers, lower-cased: the names PEFT's per-model-type target map
# (peft.utils.constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING) uses across its families, plus those of
# families it lacks (DistilBERT q_lin, MPNet q, ModernBERT Wqkv, DeepSeek's low-rank q_a/q_b and kv_a/kv_b). A
# block's other layers inside a module whose name says attention are its output projection; the rest is the MLP
# (gated MLPs' gate/up/down, shared experts and expert stacks included).
QUERY_NAMES = {"query", "q", "q_proj", "q_lin", "query_proj", "wq", "q_a_proj", "q_b_proj"}
KEY_NAMES = {"key", "k", "k_proj", "k_lin", "key_proj", "wk"}
VALUE_NAMES = {"value", "v", "v_proj", "v_lin", "value_proj", "wv"}
FUSED_QKV_NAMES = {"qkv", "qkv_proj", "wqkv", "c_attn", "query_key_value", "in_proj", "w_pack"}
FUSED_KV_NAMES = {"kv_proj", "kv_a_proj_with_mqa", "kv_b_proj"}
# Mixture-of-experts routers: the linear (or the module holding the weight) that scores the experts for each token,
# and Qwen2-MoE's one-output gate of its shared expert.
ROUTER_NAMES = {"gate", "router", "shared_expert_gate"}
_ATTENTION_WORDS = ("attn", "attention")


def classify_block_layer(path: str) -> tuple[str, ...]:
    """The LoRA switches a linear layer or weight parameter at `path` (relative to its block) serves."""
    leaf = path.rsplit(".", 1)[-1].lower()
    if leaf in FUSED_QKV_NAMES:
        return ("query", "key", "value")
    if leaf in FUSED_KV_NAMES:
        return ("key", "value")
    for switch, names in (("query", QUERY_NAMES), ("key", KEY_NAMES), ("value", VALUE_NAMES)):
        if leaf in names:
            return (switch,)
    parents = path.lower().split(".")[:-1]
    if any(word in part for part in parents for word in _ATTENTION_WORDS):
        return ("projection",)
    return ("mlp",)


def is_router(path: str, module: "torch.nn.Module") -> bool:
    return path.rsplit(".", 1)[-1].lower() in ROUTER_NAMES or type(module).__name__.endswith("Router")


def is_decoder_type(model_type: str) -> bool:
    """A decoder LM: transformers has a causal-LM class for it and no masked-LM one (BERT-likes have both)."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                         MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def is_encoder_decoder_type(model_type: str) -> bool:
    """An encoder-decoder (BART, T5): transformers has a sequence-to-sequence LM class for it."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES


def _linear_types() -> tuple[type, ...]:
    import torch
    from transformers.pytorch_utils import Conv1D

    return (torch.nn.Linear, Conv1D)


def _find_blocks(stack: "torch.nn.Module") -> tuple[Optional[str], Optional[str]]:
    """The block list inside `stack` (the base model, or an encoder-decoder's encoder or decoder): the ModuleList of
    same-class modules with the most parameters, among those holding linear layers if any do (SqueezeBERT's
    blocks hold Conv1d layers only). ALBERT's one shared layer sits in two nested lists of one: the inner one,
    closer to the linears. Second: where no such list exists, the largest list of mixed classes that holds linear
    layers, described (Jamba's)."""
    import torch

    linear_types = _linear_types()
    best, best_rank, mixed, mixed_size = None, (False, -1), None, -1
    for name, module in stack.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or len(module) == 0:
            continue
        size = sum(p.numel() for p in module.parameters())
        linear = any(isinstance(m, linear_types) for m in module[0].modules())
        classes = list(dict.fromkeys(type(block).__name__ for block in module))
        if len(classes) > 1:
            if linear and size > mixed_size:
                mixed, mixed_size = f"{name} ({', '.join(classes)})", size
            continue
        if size == 0:
            continue
        rank = (linear, size)
        if rank > best_rank or (rank == best_rank and best is not None and name.startswith(best + ".")):
            best, best_rank = name, rank
    return best, None if best is not None else mixed


def _stacks(model: "torch.nn.Module") -> list[str]:
    """Paths under the base model of the parts that hold a block list each: the base model itself, or an
    encoder-decoder's encoder and decoder (the largest list alone would be the decoder's)."""
    base = model.base_model
    if not getattr(model.config, "is_encoder_decoder", False):
        return [""]
    names = {id(module): name for name, module in base.named_modules()}
    return [names[id(base.get_encoder())], names[id(base.get_decoder())]]


def discover(model: "torch.nn.Module") -> Architecture:
    """The Architecture of a loaded transformers classifier (not wrapped by PEFT): the block lists under the base
    model (`base_model_prefix`), the linears and weight parameters in the blocks per LoRA switch, and the head = the
    modules outside the base model that hold parameters, plus the base model's pooler where it has one (BERT,
    ALBERT: the pooler feeds the classifier)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    linear_types = _linear_types()
    model_type = model.config.model_type
    prefix = model.base_model_prefix
    base = model.base_model
    if base is model:
        raise ConfigError(f"model type {model_type!r}: {type(model).__name__} has no base model under "
                          f"{prefix!r}, so its head cannot be told from its body")
    head = []
    pooler = getattr(base, "pooler", None)
    if pooler is not None and any(True for _ in pooler.parameters()):
        head.append(f"{prefix}.pooler")
    head.extend(name for name, child in model.named_children()
                if name != prefix and any(True for _ in child.parameters()))
    head_linears = tuple(name for name, module in model.named_modules()
                         if isinstance(module, linear_types) and within(name, head))
    body_linears = tuple(name for name, module in model.named_modules()
                         if isinstance(module, linear_types) and not within(name, head))

    inner: list[str] = []
    mixed = None
    for stack in _stacks(model):
        found, mixed_list = _find_blocks(base.get_submodule(stack))
        if found is not None:
            inner.append(".".join(filter(None, [stack, found])))
        if mixed_list and mixed is None:
            mixed = ".".join(filter(None, [prefix, stack, mixed_list]))
    layers: dict[str, list[str]] = {switch: [] for switch in LORA_SWITCHES}
    parameters: dict[str, list[str]] = {switch: [] for switch in LORA_SWITCHES}
    fused: dict[str, tuple[str, ...]] = {}
    conv1d: list[str] = []
    experts: list[str] = []
    routers: list[str] = []
    for block in (block for path in inner for block in base.get_submodule(path)):
        for path, module in block.named_modules():
            if path and is_router(path, module):
                routers.append(path)
            elif isinstance(module, linear_types):
                served = classify_block_layer(path)
                for switch in served:
                    layers[switch].append(path)
                if len(served) > 1:
                    fused[path] = served
                if isinstance(module, Conv1D):
                    conv1d.append(path)
        for path, param in block.named_parameters():
            owner_path = path.rpartition(".")[0]
            owner = block.get_submodule(owner_path)
            # Weights held as 3-D parameters rather than by a layer: expert stacks, XLNet's attention (a convolution's
            # kernel is 3-D too, but it is its layer's weight; XLNet's segment embeddings are no weight to adapt).
            if param.dim() != 3 or isinstance(owner, torch.nn.modules.conv._ConvNd) or is_router(owner_path, owner) \
                    or "embed" in path.rpartition(".")[2]:
                continue
            for switch in classify_block_layer(path):
                parameters[switch].append(path)
            if type(owner).__name__.endswith("Experts"):
                experts.append(path)
    encoder = prefix
    if inner:
        # The module that owns the outermost list on the way to the (last) blocks runs them and returns their
        # output: BERT's bert.encoder, Llama's model itself (after its final norm), ALBERT's albert.encoder, BART's
        # model.decoder.
        parts = inner[-1].split(".")
        for depth in range(1, len(parts) + 1):
            if isinstance(base.get_submodule(".".join(parts[:depth])), torch.nn.ModuleList):
                encoder = ".".join([prefix, *parts[:depth - 1]])
                break

    def unique(paths: list[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(paths))

    return Architecture(model_type=model_type, blocks=tuple(f"{prefix}.{path}" for path in inner),
                        layers={switch: unique(paths) for switch, paths in layers.items()}, fused=fused,
                        head=tuple(head), head_linears=head_linears, body_linears=body_linears, encoder=encoder,
                        conv1d=unique(conv1d), decoder=is_decoder_type(model_type),
                        encoder_decoder=bool(getattr(model.config, "is_encoder_decoder", False)),
                        parameters={switch: unique(paths) for switch, paths in parameters.items() if paths},
                        experts=unique(experts), routers=unique(routers), mixed=mixed)


def skeleton(config: "PreTrainedConfig", trust_remote_code: bool = False) -> "torch.nn.Module":
    """The classifier `config` describes, on the meta device: no memory, no weights, enough to `discover` it
    before the real one loads (the 4-bit skip list must be known before quantised loading)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)


# Config attributes holding the dropout on attention probabilities (--attention_dropout) and on the hidden states
# (--hidden_dropout), first present wins: BERT-likes, DistilBERT, Llama-likes and ModernBERT, GPT-2 and Phi.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
HIDDEN_DROPOUT_KEYS = ("hidden_dropout_prob", "dropout", "resid_pdrop", "hidden_dropout", "mlp_dropout")


def dropout_attributes(config: Any) -> tuple[Optional[str], Optional[str]]:
    """(attention, hidden) dropout attribute names of a transformers config; None where it has no such knob."""
    def first(keys: tuple[str, ...]) -> Optional[str]:
        return next((key for key in keys if isinstance(getattr(config, key, None), (int, float))), None)

    return first(ATTENTION_DROPOUT_KEYS), first(HIDDEN_DROPOUT_KEYS)


# Families whose modeling code cannot run in half precision, and why: they train in fp32 (ftlab.training.speed).
HALF_PRECISION_FAILS = {
    "deberta": "(DeBERTa v1) fills masked attention scores with fp32's lowest value, which bf16 and fp16 cannot hold "
               "('value cannot be converted to type c10::BFloat16 without overflow')",
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
