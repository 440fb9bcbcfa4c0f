"""Every method on every model family: tiny random models built here from transformers' own config classes.

The expectations below (block list, head, the layers behind each LoRA switch) are written out by hand per family,
from each family's modeling code, so that the counts they give are independent of ftlab's discovery."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

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

SIZE = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2, num_labels=2)
R = 4  # LoRA rank in these tests

_BERT_LAYERS = {"query": ["attention.self.query"], "key": ["attention.self.key"], "value": ["attention.self.value"],
                "projection": ["attention.output.dense"], "mlp": ["intermediate.dense", "output.dense"]}
_LLAMA_LAYERS = {"query": ["self_attn.q_proj"], "key": ["self_attn.k_proj"], "value": ["self_attn.v_proj"],
                 "projection": ["self_attn.o_proj"], "mlp": ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]}
_GQA = dict(num_key_value_heads=2)


def _fused(layer: str) -> dict[str, list[str]]:
    return {"query": [layer], "key": [layer], "value": [layer]}


# model type -> (extra config keys, block list, head modules, layers per switch, fused layers, decoder)
FAMILIES: dict[str, tuple[dict, str, list[str], dict[str, list[str]], list[str], bool]] = {
    "bert": ({}, "bert.encoder.layer", ["bert.pooler", "classifier"], _BERT_LAYERS, [], False),
    "distilbert": (dict(dim=64, hidden_dim=128, n_layers=2, n_heads=4), "distilbert.transformer.layer",
                   ["pre_classifier", "classifier"],
                   {"query": ["attention.q_lin"], "key": ["attention.k_lin"], "value": ["attention.v_lin"],
                    "projection": ["attention.out_lin"], "mlp": ["ffn.lin1", "ffn.lin2"]}, [], False),
    "roberta": ({}, "roberta.encoder.layer", ["classifier"], _BERT_LAYERS, [], False),
    "xlm-roberta": ({}, "roberta.encoder.layer", ["classifier"], _BERT_LAYERS, [], False),
    "electra": (dict(embedding_size=32), "electra.encoder.layer", ["classifier"], _BERT_LAYERS, [], False),
    "deberta-v2": ({}, "deberta.encoder.layer", ["pooler", "classifier"],
                   {"query": ["attention.self.query_proj"], "key": ["attention.self.key_proj"],
                    "value": ["attention.self.value_proj"], "projection": ["attention.output.dense"],
                    "mlp": ["intermediate.dense", "output.dense"]}, [], False),
    "modernbert": (dict(global_attn_every_n_layers=1, cls_token_id=1, sep_token_id=2), "model.layers",
                   ["head", "classifier"], {**_fused("attn.Wqkv"), "projection": ["attn.Wo"],
                                            "mlp": ["mlp.Wi", "mlp.Wo"]}, ["attn.Wqkv"], False),
    "mpnet": ({}, "mpnet.encoder.layer", ["classifier"],
              {"query": ["attention.attn.q"], "key": ["attention.attn.k"], "value": ["attention.attn.v"],
               "projection": ["attention.attn.o"], "mlp": ["intermediate.dense", "output.dense"]}, [], False),
    # ALBERT shares one block's weights across its layers: one block in the list.
    "albert": (dict(embedding_size=32), "albert.encoder.albert_layer_groups.0.albert_layers",
               ["albert.pooler", "classifier"],
               {"query": ["attention.query"], "key": ["attention.key"], "value": ["attention.value"],
                "projection": ["attention.dense"], "mlp": ["ffn", "ffn_output"]}, [], False),
    "llama": (_GQA, "model.layers", ["score"], _LLAMA_LAYERS, [], True),
    "qwen2": (_GQA, "model.layers", ["score"], _LLAMA_LAYERS, [], True),
    "mistral": (_GQA, "model.layers", ["score"], _LLAMA_LAYERS, [], True),
    "gemma": (dict(_GQA, head_dim=16), "model.layers", ["score"], _LLAMA_LAYERS, [], True),
    "gpt2": (dict(n_embd=64, n_layer=2, n_head=4, n_positions=512), "transformer.h", ["score"],
             {**_fused("attn.c_attn"), "projection": ["attn.c_proj"], "mlp": ["mlp.c_fc", "mlp.c_proj"]},
             ["attn.c_attn"], True),
    "phi3": (_GQA, "model.layers", ["score"], {**_fused("self_attn.qkv_proj"), "projection": ["self_attn.o_proj"],
                                              "mlp": ["mlp.gate_up_proj", "mlp.down_proj"]},
             ["self_attn.qkv_proj"], True),
}
TYPES = list(FAMILIES)
# Where a method cannot apply, the one line that says so.
NOT_APPLICABLE = {("gpt2", "scratch_lora"): "gpt2.s targets are Conv1D: use --method lora"}


def _config(model_type: str):
    extra, *_ = FAMILIES[model_type]
    config = AutoConfig.for_model(model_type, **{**SIZE, **extra})
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
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 1000, (rows, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _lora_size(module: torch.nn.Module) -> int:
    if isinstance(module, Conv1D):  # weight is in x out
        fan_in, fan_out = module.weight.shape
    else:
        fan_out, fan_in = module.weight.shape
    return R * (fan_in + fan_out)


def _expected_trainable(model: torch.nn.Module, model_type: str, method: str) -> int:
    """From module shapes and the hand-written table above, not from ftlab."""
    _, blocks, head, layers, _, _ = FAMILIES[model_type]
    head_size = sum(_params(model.get_submodule(name)) for name in head)
    if method == "full":
        return _params(model)
    if method == "head":
        return head_size
    if method == "selective":  # --unfreeze_layers 1
        return _params(model.get_submodule(blocks)[-1]) + head_size
    block_layers = {path for paths in layers.values() for path in paths}
    lora = sum(_lora_size(block.get_submodule(path)) for block in model.get_submodule(blocks) for path in block_layers)
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
    _, blocks, head, layers, fused, decoder = FAMILIES[model_type]
    arch = discover(built[model_type])
    assert (arch.blocks, list(arch.head), arch.decoder) == (blocks, head, decoder)
    assert {switch: list(paths) for switch, paths in arch.layers.items()} == layers
    assert sorted(arch.fused) == fused


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
    _, _, head, _, _, _ = FAMILIES[model_type]
    base = built[model_type]
    outside_head = [module for name, module in base.named_modules() if isinstance(module, (torch.nn.Linear, Conv1D))
                    and not any(name == h or name.startswith(h + ".") for h in head)]
    expected = sum(_lora_size(m) for m in outside_head) + sum(_params(base.get_submodule(h)) for h in head)
    model = _apply(model_type, copy.deepcopy(base), "lora", lora_target_modules="all-linear")
    assert count_parameters(model).trainable == expected


@pytest.mark.parametrize("model_type", [t for t in TYPES if FAMILIES[t][4]])
def test_switching_part_of_a_fused_layer_off_is_an_error(model_type, built):
    layer = FAMILIES[model_type][4][0]
    with pytest.raises(ConfigError, match=rf"--lora_key false: {model_type}'s {layer} computes query, key, value "
                                          rf"in one layer"):
        _apply(model_type, copy.deepcopy(built[model_type]), "lora", lora_key=False)
    # All three off: the fused layer is left alone, the others still get adapters.
    model = _apply(model_type, copy.deepcopy(built[model_type]), "lora", lora_query=False, lora_key=False,
                   lora_value=False)
    assert not any(layer.split(".")[-1] + ".lora_A" in name for name, _ in model.named_parameters())


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
    assert set(loaded) == set(merged_dirs) and len(loaded) == 2 * len(TYPES) - len(NOT_APPLICABLE)
    for name, (_, logits) in merged_dirs.items():
        torch.testing.assert_close(torch.tensor(loaded[name]), logits, atol=MERGE_ATOL, rtol=0, msg=name)


@pytest.mark.parametrize("model_type", TYPES)
def test_qlora_quantises_the_block_linears_and_keeps_the_head_in_full_precision(model_type, saved, built):
    import bitsandbytes as bnb

    from ftlab.models.load import load_classifier
    from ftlab.models.sources import ModelSource

    _, blocks, head, layers, _, _ = FAMILIES[model_type]
    args = MethodArgs(method="qlora", lora_r=R)
    base = load_classifier(ModelSource(model_type, str(saved[model_type]), "local"), ["neg", "pos"], args)
    block_layers = {path for paths in layers.values() for path in paths}
    for block in base.get_submodule(blocks):
        assert all(isinstance(block.get_submodule(path), bnb.nn.Linear4bit) for path in block_layers)
    for name in head:
        assert not any(isinstance(m, bnb.nn.Linear4bit) for m in base.get_submodule(name).modules())
        assert all(p.dtype == torch.float32 for p in base.get_submodule(name).parameters())
    model = apply_method(base, args)
    assert count_parameters(model).trainable == _expected_trainable(built[model_type], model_type, "qlora")
    # Training mode: in eval mode bitsandbytes repacks 4-bit weights for a CPU kernel that needs wider layers.
    model.train()
    batch, labels = _batch(), torch.tensor([0, 1, 1])
    losses = _train_three_steps(model, batch, labels)
    assert losses[2] < losses[0], losses


def _padded(side: str) -> dict[str, torch.Tensor]:
    """Three texts of 9, 6 and 3 tokens padded to 9 on `side` (pad id 0)."""
    ids = _batch()["input_ids"]
    mask = torch.ones_like(ids)
    for row, length in enumerate((9, 6, 3)):
        if side == "right":
            mask[row, length:] = 0
        else:
            mask[row, :9 - length] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("model_type", [t for t in TYPES if FAMILIES[t][5]])
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


@pytest.mark.parametrize("model_type", TYPES)
def test_mean_pooling_ignores_padding_in_every_family(model_type, built):
    """Right padding: the texts' positions stay as they were, so their mean is unchanged."""
    model = copy.deepcopy(built[model_type])
    apply_pooling(model, "mean")
    batch = _padded("right")
    with torch.no_grad():
        logits = model(**batch).logits
        alone = model(input_ids=batch["input_ids"][2:, :3], attention_mask=batch["attention_mask"][2:, :3]).logits
    torch.testing.assert_close(logits[2:], alone, atol=1e-5, rtol=0)


# --- main.py end to end on a tiny decoder and a tiny ModernBERT, each saved with a tokenizer ---------------------

def _tiny_family_dir(out: Path, model_type: str, style: str) -> Path:
    from tests.conftest import word_level_tokenizer

    tokenizer = word_level_tokenizer(style)
    vocab = tokenizer.get_vocab()
    ids = {key: vocab[token] for key, token in (("bos_token_id", tokenizer.bos_token),
                                                 ("eos_token_id", tokenizer.eos_token),
                                                 ("cls_token_id", tokenizer.cls_token),
                                                 ("sep_token_id", tokenizer.sep_token),
                                                 ("pad_token_id", tokenizer.pad_token)) if token}
    extra, *_ = FAMILIES[model_type]
    # The tokenizer's special ids (a decoder's tokenizer has no pad token: its config has none either).
    config = AutoConfig.for_model(model_type, **{**SIZE, **extra, "vocab_size": len(vocab), "pad_token_id": None,
                                                 **ids})
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
    decoder = FAMILIES[model_type][5]
    assert record["model_type"] == model_type
    assert record["pooling"]["used"] == ("last" if decoder else "cls")
    assert record["pad_token_from_eos"] is decoder
    assert record["gradient_checkpointing"] is ("--gradient_checkpointing" in extra)
    assert record["trust_remote_code"] is False
    assert record["metrics"]["test"]["num_samples"] > 0 and record["loss_history"]
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged")
    assert type(merged).__name__.lower().startswith(model_type.replace("-", ""))
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
    for model_type, (_, _, _, _, fused, decoder) in FAMILIES.items():
        _, _, pooling, fused_cell = table[model_type]
        assert pooling.split(" ")[0] == ("last" if decoder else "cls"), model_type
        named = re.findall(r"`([^`]+)`", fused_cell)
        assert [layer for layer in named if layer in fused] == fused, model_type


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


@pytest.mark.parametrize("model_type", TYPES)
def test_bench_flops_model_equals_flop_counter_mode(model_type, built, saved):
    """bench's FLOPs of the body (everything but the head) against PyTorch's own count of a real forward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    from ftlab.models.flops import flops_model

    model = copy.deepcopy(built[model_type])
    # Eager attention: FlopCounterMode does not count PyTorch's fused CPU attention kernel (its matmuls it does).
    model.set_attn_implementation("eager")
    tokens = 16
    ids = _batch(rows=1, length=tokens)["input_ids"]
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    head = sum(sum(counts.get(f"{root}.{name}", {}).values()) for name in FAMILIES[model_type][2])
    body = counter.get_total_flops() - head
    assert flops_model(str(saved[model_type])).forward_flops_per_sample(tokens) == body
