"""Every method on every model family: tiny random models built here from transformers' own config classes.

The expectations below (block list, head, the layers behind each LoRA switch) are written out by hand per family,
from each family's modeling code, so that the counts they give are independent of ftlab's discovery."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification
from transformers.pytorch_utils import Conv1D

from ftlab.config import MethodArgs
from ftlab.errors import ConfigError
from ftlab.models.architectures import discover
from ftlab.models.export import merged_model
from ftlab.methods import count_parameters
from ftlab.models.tuning import apply_method
from ftlab.models.pooling import apply_pooling
from tests.conftest import ROOT

# Label names, as runs give them: a config saved with the default names leaves them out of config.json, and BART's
# then reloads with its own default of three labels.
SIZE = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2, num_labels=2,
            id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
EOS = SIZE["eos_token_id"]
UNSET = object()  # an `extra` value that removes the key from SIZE (XLNet's config refuses a position limit)
R = 4  # LoRA rank in these tests


class Family(NamedTuple):
    """A family's tiny config (`extra` over SIZE) and, written out by hand from its modeling code: its block lists
    (an encoder-decoder's encoder and decoder), head, the linear layers behind each LoRA switch (relative to a block,
    over all blocks), its fused layers, the pooling its head reads, its expert stacks (3-D parameters behind
    --lora_mlp) and its routers."""
    extra: dict
    blocks: list[str]
    head: list[str]
    layers: dict[str, list[str]]
    fused: list[str] = []
    pooling: str = "cls"
    experts: list[str] = []
    routers: list[str] = []


_BERT_LAYERS = {"query": ["attention.self.query"], "key": ["attention.self.key"], "value": ["attention.self.value"],
                "projection": ["attention.output.dense"], "mlp": ["intermediate.dense", "output.dense"]}
_ATTENTION = {"query": ["self_attn.q_proj"], "key": ["self_attn.k_proj"], "value": ["self_attn.v_proj"],
              "projection": ["self_attn.o_proj"]}
_LLAMA_LAYERS = {**_ATTENTION, "mlp": ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]}
_NO_LAYERS: dict[str, list[str]] = {"query": [], "key": [], "value": [], "projection": [], "mlp": []}
_GQA = dict(num_key_value_heads=2)
_SEQ2SEQ = dict(encoder_layers=2, decoder_layers=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                encoder_attention_heads=4, decoder_attention_heads=4, decoder_start_token_id=2)
# BART's decoder blocks attend to the encoder too (encoder_attn).
_BART_LAYERS = {switch: [f"self_attn.{leaf}", f"encoder_attn.{leaf}"] for switch, leaf in
                (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("projection", "out_proj"))}
_EXPERTS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


def _fused(layer: str) -> dict[str, list[str]]:
    return {"query": [layer], "key": [layer], "value": [layer]}


FAMILIES: dict[str, Family] = {
    "bert": Family({}, ["bert.encoder.layer"], ["bert.pooler", "classifier"], _BERT_LAYERS),
    "distilbert": Family(dict(dim=64, hidden_dim=128, n_layers=2, n_heads=4), ["distilbert.transformer.layer"],
                         ["pre_classifier", "classifier"],
                         {"query": ["attention.q_lin"], "key": ["attention.k_lin"], "value": ["attention.v_lin"],
                          "projection": ["attention.out_lin"], "mlp": ["ffn.lin1", "ffn.lin2"]}),
    "roberta": Family({}, ["roberta.encoder.layer"], ["classifier"], _BERT_LAYERS),
    "xlm-roberta": Family({}, ["roberta.encoder.layer"], ["classifier"], _BERT_LAYERS),
    "electra": Family(dict(embedding_size=32), ["electra.encoder.layer"], ["classifier"], _BERT_LAYERS),
    "deberta-v2": Family({}, ["deberta.encoder.layer"], ["pooler", "classifier"],
                         {"query": ["attention.self.query_proj"], "key": ["attention.self.key_proj"],
                          "value": ["attention.self.value_proj"], "projection": ["attention.output.dense"],
                          "mlp": ["intermediate.dense", "output.dense"]}),
    # DeBERTa v1: one in_proj computes query, key and value.
    "deberta": Family(dict(pooler_hidden_size=64), ["deberta.encoder.layer"], ["pooler", "classifier"],
                      {**_fused("attention.self.in_proj"), "projection": ["attention.output.dense"],
                       "mlp": ["intermediate.dense", "output.dense"]}, ["attention.self.in_proj"]),
    "modernbert": Family(dict(global_attn_every_n_layers=1, cls_token_id=1, sep_token_id=2), ["model.layers"],
                         ["head", "classifier"], {**_fused("attn.Wqkv"), "projection": ["attn.Wo"],
                                                  "mlp": ["mlp.Wi", "mlp.Wo"]}, ["attn.Wqkv"]),
    "mpnet": Family({}, ["mpnet.encoder.layer"], ["classifier"],
                    {"query": ["attention.attn.q"], "key": ["attention.attn.k"], "value": ["attention.attn.v"],
                     "projection": ["attention.attn.o"], "mlp": ["intermediate.dense", "output.dense"]}),
    # ALBERT shares one block's weights across its layers: one block in the list.
    "albert": Family(dict(embedding_size=32), ["albert.encoder.albert_layer_groups.0.albert_layers"],
                     ["albert.pooler", "classifier"],
                     {"query": ["attention.query"], "key": ["attention.key"], "value": ["attention.value"],
                      "projection": ["attention.dense"], "mlp": ["ffn", "ffn_output"]}),
    # ConvBERT's attention also computes convolution kernels from the input (conv_kernel_layer, 18 = 2 heads x 9).
    "convbert": Family(dict(embedding_size=64), ["convbert.encoder.layer"], ["classifier"],
                       {**_BERT_LAYERS, "projection": ["attention.self.conv_kernel_layer",
                                                       "attention.self.conv_out_layer", "attention.output.dense"]}),
    # SqueezeBERT's blocks compute with grouped Conv1d layers: no linear layer in them.
    "squeezebert": Family(dict(embedding_size=64), ["transformer.encoder.layers"], ["transformer.pooler", "classifier"],
                          _NO_LAYERS),
    # Encoder-decoders: blocks in the encoder and in the decoder; the head reads the decoder's EOS state.
    "bart": Family(_SEQ2SEQ, ["model.encoder.layers", "model.decoder.layers"], ["classification_head"],
                   {**_BART_LAYERS, "mlp": ["fc1", "fc2"]}, pooling="eos"),
    "mbart": Family(_SEQ2SEQ, ["model.encoder.layers", "model.decoder.layers"], ["classification_head"],
                    {**_BART_LAYERS, "mlp": ["fc1", "fc2"]}, pooling="eos"),
    # T5's blocks hold numbered sub-layers: the encoder's feed-forward is layer.1, the decoder's layer.2 (its layer.1
    # attends to the encoder).
    "t5": Family(dict(d_ff=128, num_decoder_layers=2, d_kv=16, decoder_start_token_id=0,
                      relative_attention_num_buckets=8),
                 ["transformer.encoder.block", "transformer.decoder.block"], ["classification_head"],
                 {switch: [f"layer.0.SelfAttention.{leaf}", f"layer.1.EncDecAttention.{leaf}"]
                  for switch, leaf in (("query", "q"), ("key", "k"), ("value", "v"), ("projection", "o"))}
                 | {"mlp": [f"layer.{n}.DenseReluDense.{leaf}" for n in (1, 2) for leaf in ("wi", "wo")]},
                 pooling="eos"),
    # XLNet: attention weights held as 3-D parameters (rel_attn.q, ...); its own head reads the last token.
    "xlnet": Family(dict(d_head=16, d_inner=128, max_position_embeddings=UNSET), ["transformer.layer"],
                    ["sequence_summary", "logits_proj"], {**_NO_LAYERS, "mlp": ["ff.layer_1", "ff.layer_2"]},
                    pooling="last"),
    "llama": Family(_GQA, ["model.layers"], ["score"], _LLAMA_LAYERS, pooling="last"),
    "qwen2": Family(_GQA, ["model.layers"], ["score"], _LLAMA_LAYERS, pooling="last"),
    "mistral": Family(_GQA, ["model.layers"], ["score"], _LLAMA_LAYERS, pooling="last"),
    "gemma": Family(dict(_GQA, head_dim=16), ["model.layers"], ["score"], _LLAMA_LAYERS, pooling="last"),
    "gpt2": Family(dict(n_embd=64, n_layer=2, n_head=4, n_positions=512), ["transformer.h"], ["score"],
                   {**_fused("attn.c_attn"), "projection": ["attn.c_proj"], "mlp": ["mlp.c_fc", "mlp.c_proj"]},
                   ["attn.c_attn"], pooling="last"),
    "phi3": Family(_GQA, ["model.layers"], ["score"], {**_fused("self_attn.qkv_proj"),
                                                      "projection": ["self_attn.o_proj"],
                                                      "mlp": ["mlp.gate_up_proj", "mlp.down_proj"]},
                   ["self_attn.qkv_proj"], pooling="last"),
    # Falcon's linears are FalconLinear, a subclass of nn.Linear; multi-query attention (one key/value head).
    "falcon": Family(dict(ffn_hidden_size=128), ["transformer.h"], ["score"],
                     {**_fused("self_attention.query_key_value"), "projection": ["self_attention.dense"],
                      "mlp": ["mlp.dense_h_to_4h", "mlp.dense_4h_to_h"]}, ["self_attention.query_key_value"],
                     pooling="last"),
    # Mixtures of experts: the experts are 3-D parameters (experts x out x in) beside a router; Qwen2-MoE adds a
    # shared expert (linears) with its one-output gate; DeepSeek-V3 a dense MLP in its first block, shared experts
    # in the others, and latent attention (low-rank query, and key and value from one compressed projection).
    "mixtral": Family(dict(_GQA, num_local_experts=4, num_experts_per_tok=2), ["model.layers"], ["score"],
                      {**_ATTENTION, "mlp": []}, pooling="last", experts=_EXPERTS, routers=["mlp.gate"]),
    "qwen3_moe": Family(dict(_GQA, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2, head_dim=16),
                        ["model.layers"], ["score"], {**_ATTENTION, "mlp": []}, pooling="last", experts=_EXPERTS,
                        routers=["mlp.gate"]),
    "qwen2_moe": Family(dict(_GQA, moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4,
                             num_experts_per_tok=2), ["model.layers"], ["score"],
                        {**_ATTENTION, "mlp": ["mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj",
                                               "mlp.shared_expert.down_proj"]},
                        pooling="last", experts=_EXPERTS, routers=["mlp.gate", "mlp.shared_expert_gate"]),
    "deepseek_v3": Family(dict(first_k_dense_replace=1, n_routed_experts=4, n_shared_experts=1,
                               moe_intermediate_size=32, kv_lora_rank=16, q_lora_rank=32, qk_rope_head_dim=8,
                               v_head_dim=16, qk_nope_head_dim=8, n_group=1, topk_group=1, num_experts_per_tok=2,
                               num_key_value_heads=4), ["model.layers"], ["score"],
                          {"query": ["self_attn.q_a_proj", "self_attn.q_b_proj"],
                           "key": ["self_attn.kv_a_proj_with_mqa", "self_attn.kv_b_proj"],
                           "value": ["self_attn.kv_a_proj_with_mqa", "self_attn.kv_b_proj"],
                           "projection": ["self_attn.o_proj"],
                           "mlp": ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "mlp.shared_experts.gate_proj",
                                   "mlp.shared_experts.up_proj", "mlp.shared_experts.down_proj"]},
                          ["self_attn.kv_a_proj_with_mqa", "self_attn.kv_b_proj"], pooling="last", experts=_EXPERTS,
                          routers=["mlp.gate"]),
    # Jamba alternates Mamba and attention blocks (and dense and expert MLPs): a layer list of mixed classes.
    "jamba": Family(dict(_GQA, num_experts=4, expert_layer_period=2, expert_layer_offset=1, attn_layer_period=2,
                         attn_layer_offset=1, mamba_dt_rank=8, mamba_d_state=8, mamba_expand=2), [], ["score"],
                    _NO_LAYERS, pooling="last"),
}
TYPES = list(FAMILIES)
DECODERS = [t for t in TYPES if FAMILIES[t].pooling == "last"]
ENCODER_DECODERS = [t for t in TYPES if FAMILIES[t].pooling == "eos"]
MOE = [t for t in TYPES if FAMILIES[t].experts]
_MOE_SCRATCH = "MLP experts mlp.experts.gate_up_proj, mlp.experts.down_proj are 3-D parameters, not layers; only " \
               "--method lora adapts them"
_XLNET = r"xlnet's weights rel_attn.q, rel_attn.k, rel_attn.v, rel_attn.o, rel_attn.r are 3-D parameters, not layers"
_MIXED = r"its layer list model.layers \(JambaMambaDecoderLayer, JambaAttentionDecoderLayer\) mixes block classes"
# Where a method of the hand-counted ones cannot apply, the one line that says so.
NOT_APPLICABLE = {("gpt2", "scratch_lora"): "gpt2's targets are Conv1D: use --method lora",
                  ("falcon", "scratch_lora"): "falcon's targets are FalconLinear: use --method lora",
                  **{(t, "scratch_lora"): _MOE_SCRATCH for t in MOE},
                  ("falcon", "qlora"): "quantises plain torch.nn.Linear layers only, and falcon's are FalconLinear",
                  **{("xlnet", method): _XLNET for method in ("lora", "qlora", "scratch_lora")},
                  **{("squeezebert", method): "no linear layer in its blocks"
                     for method in ("lora", "qlora", "scratch_lora")},
                  **{("jamba", method): _MIXED for method in ("lora", "qlora", "scratch_lora", "selective")}}


def _config(model_type: str):
    values = {**SIZE, **FAMILIES[model_type].extra}
    config = AutoConfig.for_model(model_type, **{key: value for key, value in values.items() if value is not UNSET})
    # No dropout: training-mode forwards (bitsandbytes' CPU path) are then deterministic.
    for key, value in config.to_dict().items():
        if "drop" in key and isinstance(value, float):
            setattr(config, key, 0.0)
    return config


@pytest.fixture(scope="module")
def built() -> dict[str, torch.nn.Module]:
    models = {}
    for model_type in TYPES:
        torch.manual_seed(0)
        models[model_type] = AutoModelForSequenceClassification.from_config(_config(model_type)).eval()
    return models


@pytest.fixture(scope="module")
def saved(built, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    for model_type, model in built.items():
        model.save_pretrained(root / model_type)
    return {model_type: root / model_type for model_type in TYPES}


def _batch(seed: int = 1, rows: int = 3, length: int = 9) -> dict[str, torch.Tensor]:
    """Random texts, each ending with the EOS token (an encoder-decoder's head reads it; one per text)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (rows, length), generator=generator)
    ids[:, -1] = EOS
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _lora_size(module: torch.nn.Module) -> int:
    if isinstance(module, Conv1D):  # weight is in x out
        fan_in, fan_out = module.weight.shape
    else:
        fan_out, fan_in = module.weight.shape
    return R * (fan_in + fan_out)


def _blocks(model: torch.nn.Module, model_type: str) -> list[tuple[str, torch.nn.Module]]:
    """(full path, block) of every block of every block list of the family."""
    return [(f"{blocks}.{index}", block) for blocks in FAMILIES[model_type].blocks
            for index, block in enumerate(model.get_submodule(blocks))]


def _adapted(model: torch.nn.Module, model_type: str) -> tuple[list[str], list[str]]:
    """The full paths of the block layers behind the switches and of the expert stacks, by the table above."""
    family = FAMILIES[model_type]
    paths = list(dict.fromkeys(path for layers in family.layers.values() for path in layers))
    layers = [f"{name}.{path}" for name, block in _blocks(model, model_type) for path in paths
              if path in dict(block.named_modules())]
    experts = [f"{name}.{path}" for name, block in _blocks(model, model_type) for path in family.experts
               if path in dict(block.named_parameters())]
    return layers, experts


def _expected_trainable(model: torch.nn.Module, model_type: str, method: str) -> int:
    """From module shapes and the hand-written table above, not from ftlab."""
    family = FAMILIES[model_type]
    head_size = sum(_params(model.get_submodule(name)) for name in family.head)
    if method == "full":
        return _params(model)
    if method == "head":
        return head_size
    if method == "selective":  # --unfreeze_layers 1: the last block of each list (encoder and decoder)
        return sum(_params(model.get_submodule(blocks)[-1]) for blocks in family.blocks) + head_size
    layers, experts = _adapted(model, model_type)
    lora = sum(_lora_size(model.get_submodule(path)) for path in layers)
    # PEFT's LoRA on an expert stack (experts x out x in): rank r per expert, A and B.
    parameters = dict(model.named_parameters())
    lora += sum(R * parameters[path].shape[0] * sum(parameters[path].shape[1:]) for path in experts)
    return lora + head_size


def _apply(model_type: str, model: torch.nn.Module, method: str, **extra) -> torch.nn.Module:
    return apply_method(model, MethodArgs(method=method, lora_r=R, unfreeze_layers=1, **extra))


def _train_three_steps(model: torch.nn.Module, batch: dict, labels: torch.Tensor) -> list[float]:
    """The loss before each of three AdamW steps (lr 1e-2) on the trainable parameters."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model(**batch, labels=labels).loss
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return losses


@pytest.mark.parametrize("model_type", TYPES)
def test_discovery_finds_the_blocks_head_and_layers_of_each_switch(model_type, built):
    family = FAMILIES[model_type]
    arch = discover(built[model_type])
    assert (list(arch.blocks), list(arch.head)) == (family.blocks, family.head)
    assert (arch.decoder, arch.encoder_decoder) == (family.pooling == "last", family.pooling == "eos")
    assert {switch: list(paths) for switch, paths in arch.layers.items()} == family.layers
    assert sorted(arch.fused) == sorted(family.fused)
    assert (list(arch.experts), list(arch.routers)) == (family.experts, family.routers)


# The methods whose trainable parameters _expected_trainable derives from module shapes, per family (the other
# methods' counts: tests/test_method_registry.py, on MiniLM's shapes).
HAND_COUNTED = ("full", "head", "selective", "lora", "scratch_lora")


@pytest.mark.parametrize("method", HAND_COUNTED)
@pytest.mark.parametrize("model_type", TYPES)
def test_trainable_parameters_equal_a_count_from_module_shapes(model_type, method, built):
    model = copy.deepcopy(built[model_type])
    if (model_type, method) in NOT_APPLICABLE:
        with pytest.raises(ConfigError, match=NOT_APPLICABLE[model_type, method]):
            _apply(model_type, model, method)
        return
    expected = _expected_trainable(built[model_type], model_type, method)
    assert count_parameters(_apply(model_type, model, method)).trainable == expected


@pytest.mark.parametrize("model_type", [t for t in TYPES if (t, "lora") not in NOT_APPLICABLE])
def test_lora_adapters_sit_on_the_switches_layers_of_every_block_list_and_the_expert_stacks(model_type, built):
    """Where the adapters are, by name: every block layer of the table (the encoder's and the decoder's blocks of
    an encoder-decoder; DeepSeek's dense MLP and shared experts), the expert stacks as parameters, no router; and
    only their adapters and the head train."""
    family = FAMILIES[model_type]
    model = _apply(model_type, copy.deepcopy(built[model_type]), "lora")
    layers, experts = _adapted(built[model_type], model_type)
    tuner = model.base_model
    assert sorted(tuner.targeted_module_names) == sorted(layers)
    assert sorted(getattr(tuner, "targeted_parameter_names", [])) == sorted(experts)
    if family.pooling == "eos":  # both stacks
        assert {name.split(".layers.")[0].split(".block.")[0] for name in layers} == \
            {blocks.rsplit(".", 1)[0] for blocks in family.blocks}
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in name or "modules_to_save" in name for name in trainable)
    routers = [f"{block}.{router}" for block, _ in _blocks(built[model_type], model_type) for router in family.routers]
    assert not [name for name in trainable if any(f".{router}." in name for router in routers)]


@pytest.mark.parametrize("method", ["lora", "scratch_lora"])
@pytest.mark.parametrize("model_type", TYPES)
def test_lora_starts_at_the_base_model_and_two_steps_change_the_loss(model_type, method, built):
    if (model_type, method) in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[model_type, method])
    base = built[model_type]
    batch, labels = _batch(), torch.tensor([0, 1, 1])
    with torch.no_grad():
        base_logits = base(**batch).logits
    torch.manual_seed(0)
    model = _apply(model_type, copy.deepcopy(base), method).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, base_logits, atol=1e-6, rtol=0)  # B = 0
    losses = _train_three_steps(model, batch, labels)
    assert losses[2] != losses[0] and losses[2] < losses[0], losses
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # the adapters themselves moved


@pytest.mark.parametrize("model_type", TYPES)
def test_all_linear_targets_every_linear_outside_the_head(model_type, built):
    head = FAMILIES[model_type].head
    base = built[model_type]
    outside_head = [module for name, module in base.named_modules() if isinstance(module, (torch.nn.Linear, Conv1D))
                    and not any(name == h or name.startswith(h + ".") for h in head)]
    if not outside_head:  # SqueezeBERT: its blocks compute with Conv1d layers
        with pytest.raises(ConfigError, match="--lora_target_modules all-linear: no layer of squeezebert matches"):
            _apply(model_type, copy.deepcopy(base), "lora", lora_target_modules="all-linear")
        return
    expected = sum(_lora_size(m) for m in outside_head) + sum(_params(base.get_submodule(h)) for h in head)
    model = _apply(model_type, copy.deepcopy(base), "lora", lora_target_modules="all-linear")
    assert count_parameters(model).trainable == expected


@pytest.mark.parametrize("model_type", [t for t in TYPES if FAMILIES[t].fused])
def test_switching_part_of_a_fused_layer_off_is_an_error(model_type, built):
    family = FAMILIES[model_type]
    layer = family.fused[0]
    served = [switch for switch in ("query", "key", "value") if layer in family.layers[switch]]
    with pytest.raises(ConfigError, match=rf"--lora_key false: {model_type}'s {layer} computes {', '.join(served)} "
                                          rf"in one layer"):
        _apply(model_type, copy.deepcopy(built[model_type]), "lora", lora_key=False)
    # All three off: the fused layers are left alone, the others still get adapters.
    model = _apply(model_type, copy.deepcopy(built[model_type]), "lora", lora_query=False, lora_key=False,
                   lora_value=False)
    assert not any(fused.split(".")[-1] + ".lora_A" in name for name, _ in model.named_parameters()
                   for fused in family.fused)


def test_peft_default_targets_are_among_the_derived_ones(built):
    """PEFT's per-model-type map names (a subset of) the same layers."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    checked = 0
    for model_type in TYPES:
        if model_type not in PEFT_TARGETS:
            continue
        leaves = {path.rsplit(".", 1)[-1] for paths in discover(built[model_type]).layers.values() for path in paths}
        assert set(PEFT_TARGETS[model_type]) <= leaves, model_type
        checked += 1
    assert checked >= 8


@pytest.fixture(scope="module")
def merged_dirs(built, tmp_path_factory) -> dict[str, tuple[Path, torch.Tensor]]:
    """Each family's LoRA (and scratch LoRA) model with non-zero adapters, merged and saved; with the adapter
    model's logits."""
    root = tmp_path_factory.mktemp("merged")
    out = {}
    for model_type in TYPES:
        for method in ("lora", "scratch_lora"):
            if (model_type, method) in NOT_APPLICABLE:
                continue
            torch.manual_seed(0)
            model = _apply(model_type, copy.deepcopy(built[model_type]), method)
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if "lora_B" in name:
                        param.normal_(std=0.2)
                model.eval()
                logits = model(**_batch()).logits
                merged = merged_model(model, method).eval()
                torch.testing.assert_close(merged(**_batch()).logits, logits, atol=MERGE_ATOL, rtol=0)
            merged.save_pretrained(root / f"{model_type}-{method}")
            out[f"{model_type}-{method}"] = (root / f"{model_type}-{method}", logits)
    return out


MERGE_ATOL = 1e-5  # fp32: W x + B A x against (W + B A) x, re-associated


def test_merged_models_load_without_peft_and_give_the_adapter_models_logits(merged_dirs):
    """One fresh interpreter in which peft cannot be imported loads every merged model with plain transformers."""
    script = (
        "import json, sys\n"
        "sys.modules['peft'] = None  # any import of peft now fails\n"
        "import torch\n"
        "from transformers import AutoModelForSequenceClassification\n"
        "out = {}\n"
        "batch = json.loads(sys.argv[1])\n"
        "for name, path in json.loads(sys.argv[2]).items():\n"
        "    model = AutoModelForSequenceClassification.from_pretrained(path).eval()\n"
        "    with torch.no_grad():\n"
        "        out[name] = model(input_ids=torch.tensor(batch)).logits.tolist()\n"
        "print(json.dumps(out))\n")
    batch = _batch()["input_ids"].tolist()
    paths = {name: str(path) for name, (path, _) in merged_dirs.items()}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(batch), json.dumps(paths)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    refused = [pair for pair in NOT_APPLICABLE if pair[1] in ("lora", "scratch_lora")]
    assert set(loaded) == set(merged_dirs) and len(loaded) == 2 * len(TYPES) - len(refused)
    for name, (_, logits) in merged_dirs.items():
        torch.testing.assert_close(torch.tensor(loaded[name]), logits, atol=MERGE_ATOL, rtol=0, msg=name)


def _packs_for_the_cpu_kernel(layer: torch.nn.Module) -> bool:
    """Whether bitsandbytes' AVX512-BF16 CPU kernel, which repacks a 4-bit layer the first time it evaluates, can
    take this layer (run here on copies, on any CPU)."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    try:
        _convert_weight_packed_for_cpu(layer.weight.data.clone(), copy.deepcopy(layer.weight.quant_state))
    except (AssertionError, RuntimeError):
        return False
    return True


@pytest.mark.parametrize("model_type", TYPES)
def test_qlora_quantises_the_block_linears_and_keeps_the_head_in_full_precision(model_type, saved, built):
    import bitsandbytes as bnb

    from ftlab.models.load import load_classifier, unquantised_layers
    from ftlab.models.sources import ModelSource

    family = FAMILIES[model_type]
    args = MethodArgs(method="qlora", lora_r=R)
    # LoRA's A and dropout draw from the global generator: seeded, the three steps below do not depend on which
    # tests this worker ran before (one order left DeepSeek-V3's loss higher after them).
    torch.manual_seed(0)
    base = load_classifier(ModelSource(model_type, str(saved[model_type]), "local"), ["neg", "pos"], args)
    layers, experts = _adapted(base, model_type)
    # Full precision: the layers bitsandbytes' CPU kernel cannot pack (outputs not a multiple of 32, inputs not of
    # 64: Qwen2-MoE's one-output shared_expert_gate, ConvBERT's conv_kernel_layer, DeepSeek's latent projections),
    # those transformers keeps in fp32 (T5's wo) and those it does not quantise (Falcon's FalconLinear); every 4-bit
    # layer packs.
    fp32_leaves = set(getattr(base, "_keep_in_fp32_modules", None) or ())
    plain = {name: module for name, module in built[model_type].named_modules()
             if isinstance(module, (torch.nn.Linear, Conv1D)) and not any(name.startswith(h) for h in family.head)}
    misfits = {name for name, module in plain.items() if not isinstance(module, Conv1D)
               and (module.weight.shape[0] % 32 or module.weight.shape[1] % 64)}
    left = {name for name, module in plain.items()
            if name.rsplit(".", 1)[-1] in fp32_leaves or type(module) not in (torch.nn.Linear, Conv1D)}
    kept = unquantised_layers(base, discover(base).body_linears)
    assert set(kept) == misfits | left, kept
    assert all("bitsandbytes' CPU 4-bit kernel" in kept[name] for name in misfits)
    for name in plain:
        module = base.get_submodule(name)
        assert isinstance(module, bnb.nn.Linear4bit) == (name not in kept), name
        assert name in kept or _packs_for_the_cpu_kernel(module), name
    assert all(base.get_parameter(path).dtype == torch.float32 for path in experts)  # not linears: not quantised
    for name in family.head:
        assert not any(isinstance(m, bnb.nn.Linear4bit) for m in base.get_submodule(name).modules())
        assert all(p.dtype == torch.float32 for p in base.get_submodule(name).parameters())
    if (model_type, "qlora") in NOT_APPLICABLE:
        with pytest.raises(ConfigError, match=NOT_APPLICABLE[model_type, "qlora"]):
            apply_method(base, args)
        return
    model = apply_method(base, args)
    assert count_parameters(model).trainable == _expected_trainable(built[model_type], model_type, "qlora")
    # Training mode: in eval mode bitsandbytes repacks 4-bit weights for a CPU kernel that needs wider layers.
    model.train()
    batch, labels = _batch(), torch.tensor([0, 1, 1])
    losses = _train_three_steps(model, batch, labels)
    assert losses[2] < losses[0], losses


def _padded(side: str) -> dict[str, torch.Tensor]:
    """Three texts of 9, 6 and 3 tokens, each ending with EOS, padded to 9 on `side` (pad id 0)."""
    ids = _batch()["input_ids"]
    mask = torch.ones_like(ids)
    for row, length in enumerate((9, 6, 3)):
        if side == "right":
            mask[row, length:] = 0
            ids[row, length - 1] = EOS
        else:
            mask[row, :9 - length] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("model_type", [t for t in DECODERS if FAMILIES[t].head == ["score"]])
def test_a_decoder_pools_its_last_real_token(model_type, side, built):
    plain = built[model_type]
    model = copy.deepcopy(plain)
    apply_pooling(model, "last")
    batch = _padded(side)
    with torch.no_grad():
        states = plain.base_model(**batch).last_hidden_state
        last = torch.tensor([8, 5, 2]) if side == "right" else torch.tensor([8, 8, 8])
        first = torch.tensor([0, 0, 0]) if side == "right" else torch.tensor([0, 3, 6])
        rows = torch.arange(3)
        expected = plain.score(states[rows, last])
        first_token = plain.score(states[rows, first])
        logits = model(**batch).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    assert (logits - first_token).abs().max() > 1e-3  # pooling the first real token would fail here


# Encoder-decoders pool their EOS token only; ConvBERT's convolutions see the padding, whatever the pooling.
@pytest.mark.parametrize("model_type", [t for t in TYPES if t not in ENCODER_DECODERS and t != "convbert"])
def test_mean_pooling_ignores_padding_in_every_family(model_type, built):
    """Right padding: the texts' positions stay as they were, so their mean is unchanged."""
    model = copy.deepcopy(built[model_type])
    apply_pooling(model, "mean")
    batch = _padded("right")
    with torch.no_grad():
        logits = model(**batch).logits
        alone = model(input_ids=batch["input_ids"][2:, :3], attention_mask=batch["attention_mask"][2:, :3]).logits
    torch.testing.assert_close(logits[2:], alone, atol=1e-5, rtol=0)


# --- main.py end to end on tiny models saved with a tokenizer: a decoder, ModernBERT, BART, T5 under bf16 ------

def _tiny_family_dir(out: Path, model_type: str, style: str) -> Path:
    from tests.conftest import word_level_tokenizer

    tokenizer = word_level_tokenizer(style)
    vocab = tokenizer.get_vocab()
    ids = {key: vocab[token] for key, token in (("bos_token_id", tokenizer.bos_token),
                                                 ("eos_token_id", tokenizer.eos_token),
                                                 ("cls_token_id", tokenizer.cls_token),
                                                 ("sep_token_id", tokenizer.sep_token),
                                                 ("pad_token_id", tokenizer.pad_token)) if token}
    values = {**SIZE, **FAMILIES[model_type].extra, "vocab_size": len(vocab), "pad_token_id": None, **ids}
    # The tokenizer's special ids (a decoder's tokenizer has no pad token: its config has none either).
    config = AutoConfig.for_model(model_type, **{key: value for key, value in values.items() if value is not UNSET})
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("model_type, style, extra", [
    # A decoder whose tokenizer adds only BOS and has no pad token; head_tail truncation, gradient checkpointing.
    ("llama", "llama", ["--method", "lora", "--merge", "--gradient_checkpointing", "--truncation", "head_tail",
                        "--max_length", "8"]),
    ("modernbert", "bert", ["--method", "lora", "--merge", "--lora_target_modules", "all-linear"]),
    # Encoder-decoders evaluate (their outputs are a tuple) and pool their EOS token; T5 under bf16 autocast on the
    # CPU (its float position bias through the fp32 attention).
    ("bart", "bart", ["--method", "lora", "--merge"]),
    ("t5", "bart", ["--method", "lora", "--merge", "--precision", "bf16"]),
    # QLoRA on a mixture of experts: LoRA on the expert stacks of a 4-bit base, whose one-output shared-expert gate
    # stays in full precision (the record says so).
    ("qwen2_moe", "llama", ["--method", "qlora", "--merge", "--max_length", "16"]),
])
def test_main_trains_a_tiny_family_model_end_to_end(model_type, style, extra, tmp_path):
    from tests.conftest import run_main, synthetic_rows, write_csv

    model_dir = _tiny_family_dir(tmp_path / model_type, model_type, style)
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(96, seed=3))
    out = tmp_path / "run"
    done = run_main("--model", str(model_dir), "--dataset", str(data), "--text_column", "sentence",
                    "--label_column", "polarity", "--epochs", "1", "--batch_size", "16", "--precision", "fp32",
                    "--logging_steps", "1",
                    *extra, "--output_dir", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOAD REPORT" not in done.stderr + done.stdout  # the new head's missing weights are expected
    record = json.loads((out / "result.json").read_text())
    decoder = style == "llama"  # a tokenizer without a pad token
    assert record["model_type"] == model_type
    assert record["pooling"]["used"] == FAMILIES[model_type].pooling
    assert record["pad_token_from_eos"] is decoder
    bf16 = "bf16" in extra
    assert (record["precision"], record["precision_reason"]) == ("bf16" if bf16 else "fp32", None)
    assert record["attention"] == ("sdpa, fp32 inside bf16 autocast" if bf16 else "sdpa")
    if "qlora" in extra:
        kept = record["unquantised_layers"]
        assert sorted(kept) == [f"model.layers.{i}.mlp.shared_expert_gate" for i in range(2)]
        assert "1 outputs, not a multiple of 32" in kept["model.layers.0.mlp.shared_expert_gate"]
    assert record["gradient_checkpointing"] is ("--gradient_checkpointing" in extra)
    assert record["trust_remote_code"] is False
    assert record["metrics"]["test"]["num_samples"] > 0 and record["loss_history"]
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged")
    assert type(merged).__name__.lower().startswith(model_type.replace("-", "").replace("_", ""))
    if decoder:  # the borrowed pad token travels with the model, so that it batches without ftlab
        assert merged.config.pad_token_id == merged.config.eos_token_id
    # predict reads the merged model as the run did (its pooling saved with it), in batches with padding.
    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    model, tokenizer = load_for_inference(str(out / "merged"))
    assert model.config.ftlab_pooling == record["pooling"]["used"]
    texts = ["good", "the film was very boring and the plot was awful"]
    batched = predict(model, tokenizer, texts)
    alone = [predict(model, tokenizer, [text])[0] for text in texts]
    for together, single in zip(batched, alone):
        assert together["probabilities"]["pos"] == pytest.approx(single["probabilities"]["pos"], abs=1e-5)


def test_a_new_head_loads_without_a_load_report_but_a_missing_body_weight_still_reports(tmp_path):
    import logging

    from transformers import BertConfig, BertModel

    from ftlab.models.load import load_classifier
    from ftlab.models.sources import ModelSource

    BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)  # a base checkpoint: no classifier
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(handler)
    try:
        load_classifier(ModelSource("bert", str(tmp_path), "local"), ["neg", "pos"], MethodArgs())
        assert not [m for m in messages if "LOAD REPORT" in m]
        config = json.loads((tmp_path / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
        load_classifier(ModelSource("bert", str(tmp_path), "local"), ["neg", "pos"], MethodArgs())
        assert [m for m in messages if "LOAD REPORT" in m and "encoder.layer.1" in m]
    finally:
        logger.removeHandler(handler)


def test_docs_family_table_matches_the_tested_families():
    """The families page's table: every tested family, its pooling and its fused layers (which method trains on
    which family: tests/test_method_matrix.py)."""
    import re

    text = (ROOT / "docs" / "guide" / "families.md").read_text(encoding="utf-8")
    section = text[:text.index("## Which method trains on which family")]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]
    table = {row[0].strip("`"): row for row in rows}
    assert list(table) == TYPES
    for model_type, family in FAMILIES.items():
        _, _, pooling, fused_cell = table[model_type]
        assert pooling.split(" ")[0] == family.pooling, model_type
        named = re.findall(r"`([^`]+)`", fused_cell)
        assert [layer for layer in named if layer in family.fused] == family.fused, model_type


def test_a_model_whose_code_lives_in_its_repository_needs_trust_remote_code(tmp_path):
    from ftlab.errors import ModelSourceError
    from ftlab.models.sources import ModelSource, check_resolved_model

    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "acme-net", "auto_map": {"AutoConfig": "configuration_acme.AcmeConfig",
                                                "AutoModelForSequenceClassification": "modeling_acme.AcmeModel"}}))
    with pytest.raises(ModelSourceError, match="--model acme: its code lives in the model's repository .*; pass "
                                               "--trust_remote_code to run that code"):
        check_resolved_model(ModelSource("acme", str(tmp_path), "local"), 128)


def test_minilm_shape_lora_count_is_unchanged():
    """all-MiniLM-L6-v2's shape (BERT, hidden 384, 6 layers): LoRA r=8 on the six block linears plus the head."""
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                                     intermediate_size=1536, num_labels=2))
    assert count_parameters(apply_method(model, MethodArgs(method="lora", lora_r=8))).trainable == 480_386


# Families whose blocks compute otherwise than with linear layers, expert stacks and softmax attention: bench and
# curve give no FLOPs for them (n/a), and say why.
UNMODELLED = {"squeezebert": "convolutions", "convbert": "convolutions", "xlnet": "weight tensors",
              "jamba": "mixes block classes"}


@pytest.mark.parametrize("model_type", TYPES)
def test_bench_flops_model_equals_flop_counter_mode(model_type, built, saved):
    """bench's FLOPs of the body (everything but the head) against PyTorch's own count of a real forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    from ftlab.models.architectures import skeleton
    from ftlab.models.flops import flops_model, unmodelled

    if model_type in UNMODELLED:
        assert flops_model(str(saved[model_type])) is None
        assert UNMODELLED[model_type] in unmodelled(skeleton(_config(model_type)), discover(built[model_type]))
        return
    model = copy.deepcopy(built[model_type])
    # Eager attention and experts: FlopCounterMode counts neither PyTorch's fused CPU attention kernel nor grouped
    # expert matmuls (their plain matmuls it does).
    model.set_attn_implementation("eager")
    if FAMILIES[model_type].experts:
        model.set_experts_implementation("eager")
    tokens = 16
    ids = _batch(rows=1, length=tokens)["input_ids"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    head = sum(sum(counts.get(f"{root}.{name}", {}).values()) for name in FAMILIES[model_type].head)
    body = counter.get_total_flops() - head
    assert flops_model(str(saved[model_type])).forward_flops_per_sample(tokens) == body
