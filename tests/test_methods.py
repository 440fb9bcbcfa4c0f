import re

import pytest
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification)

from ftlab.config import MethodArgs
from ftlab.errors import ConfigError
from ftlab.methods import count_parameters
from ftlab.models.tuning import apply_method


@pytest.fixture(scope="module")
def distilbert_base_counts():
    """distilbert-base-uncased's exact shape (DistilBertConfig() defaults), 2 labels, each method applied."""
    counts = {}
    for method in ("full", "head", "lora", "selective"):
        model = DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))
        counts[method] = count_parameters(apply_method(model, MethodArgs(method=method, lora_r=8)))
    return counts


def test_distilbert_base_parameter_counts_are_exact(distilbert_base_counts):
    assert distilbert_base_counts["full"].trainable == 66_955_010
    assert distilbert_base_counts["head"].trainable == 592_130  # pre_classifier 768x768 + classifier
    # LoRA r=8 on q/k/v/out_lin/lin1/lin2 = 663,552, plus the head saved in full.
    assert distilbert_base_counts["lora"].trainable == 1_255_682
    assert distilbert_base_counts["selective"].trainable == 2 * 7_087_872 + 592_130  # last 2 blocks + head


def _lora_targets(model) -> list[str]:
    return sorted({re.sub(r"\.lora_[AB]\..*", "", name) for name, _ in model.named_parameters() if "lora_A" in name})


def _small(config_cls, **extra):
    return config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      vocab_size=100, num_labels=2, **extra)


@pytest.mark.parametrize("model_cls, config_cls, prefix", [
    (BertForSequenceClassification, BertConfig, "bert"),
    (RobertaForSequenceClassification, RobertaConfig, "roberta"),
])
def test_bert_and_roberta_lora_targets_are_the_six_block_linears(model_cls, config_cls, prefix):
    model = apply_method(model_cls(_small(config_cls)), MethodArgs(method="lora"))
    targets = _lora_targets(model)
    per_layer = ["attention.output.dense", "attention.self.key", "attention.self.query", "attention.self.value",
                 "intermediate.dense", "output.dense"]
    expected = sorted(f"base_model.model.{prefix}.encoder.layer.{i}.{t}" for i in range(2) for t in per_layer)
    assert targets == expected


def test_distilbert_lora_targets():
    model = DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                                 vocab_size=100))
    targets = _lora_targets(apply_method(model, MethodArgs(method="lora")))
    assert len(targets) == 12
    assert {t.rsplit(".", 1)[-1] for t in targets} == {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"}


@pytest.mark.parametrize("model_cls, config_cls, head", [
    (BertForSequenceClassification, BertConfig, {"bert.pooler.dense", "classifier"}),
    (RobertaForSequenceClassification, RobertaConfig, {"classifier.dense", "classifier.out_proj"}),
])
def test_head_method_trains_only_the_head(model_cls, config_cls, head):
    model = apply_method(model_cls(_small(config_cls)), MethodArgs(method="head"))
    trainable = {name.rsplit(".", 1)[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == head


def test_lora_keeps_head_trainable_and_base_frozen():
    model = apply_method(BertForSequenceClassification(_small(BertConfig)), MethodArgs(method="lora"))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in name or "modules_to_save" in name for name in trainable)
    assert any("pooler" in name for name in trainable) and any("classifier" in name for name in trainable)


class _NoBlocks(BertForSequenceClassification):
    """A classifier whose encoder keeps its layers outside any ModuleList: no block list can be found."""

    def __init__(self, config):
        super().__init__(config)
        for index, layer in enumerate(self.bert.encoder.layer):
            self.bert.encoder.add_module(f"block{index}", layer)
        del self.bert.encoder.layer


def test_a_model_without_a_findable_block_list_is_one_clear_error():
    args = MethodArgs(method="lora")
    with pytest.raises(ConfigError, match="model type 'bert': no list of transformer blocks found, so the "
                                          "--lora_<module> switches have no layers; name the layers for LoRA with "
                                          "--lora_target_modules"):
        apply_method(_NoBlocks(_small(BertConfig)), args)
    # Naming the layers works without a block list.
    model = apply_method(_NoBlocks(_small(BertConfig)), MethodArgs(method="lora", lora_target_modules="query,value"))
    assert len(_lora_targets(model)) == 4


def _tiny_distilbert():
    return DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=3, n_heads=2, hidden_dim=64,
                                                                vocab_size=100, num_labels=2))


def test_selective_trains_the_last_blocks_and_the_head():
    model = apply_method(_tiny_distilbert(), MethodArgs(method="selective", unfreeze_layers=2))
    trainable = {name.split(".")[0] if not name.startswith("distilbert.transformer.layer.") else
                 ".".join(name.split(".")[:4]) for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"distilbert.transformer.layer.1", "distilbert.transformer.layer.2", "pre_classifier",
                         "classifier"}
    with pytest.raises(ConfigError, match="--unfreeze_layers 4: the model has only 3 transformer blocks"):
        apply_method(_tiny_distilbert(), MethodArgs(method="selective", unfreeze_layers=4))


@pytest.mark.parametrize("switches, expected", [
    (dict(lora_key=False, lora_projection=False, lora_mlp=False), {"q_lin", "v_lin"}),
    (dict(lora_query=False, lora_key=False, lora_value=False, lora_projection=False), {"lin1", "lin2"}),
    (dict(lora_target_modules="q_lin, lin2"), {"q_lin", "lin2"}),
])
def test_lora_module_switches_and_explicit_targets(switches, expected):
    model = apply_method(_tiny_distilbert(), MethodArgs(method="lora", **switches))
    assert {t.rsplit(".", 1)[-1] for t in _lora_targets(model)} == expected
    assert len(_lora_targets(model)) == 3 * len(expected)


def test_lora_head_puts_adapters_on_the_head_instead_of_training_it():
    model = apply_method(_tiny_distilbert(), MethodArgs(method="lora", lora_head=True))
    targets = {t.replace("base_model.model.", "") for t in _lora_targets(model)}
    assert {"pre_classifier", "classifier"} <= targets
    assert not [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]


def test_rslora_and_dora_reach_peft():
    rs = apply_method(_tiny_distilbert(), MethodArgs(method="lora", lora_r=4, lora_alpha=8, use_rslora=True))
    layer = rs.base_model.model.distilbert.transformer.layer[0].attention.q_lin
    assert layer.scaling["default"] == pytest.approx(8 / 4 ** 0.5)
    dora = apply_method(_tiny_distilbert(), MethodArgs(method="lora", use_dora=True))
    assert any("lora_magnitude_vector" in name for name, _ in dora.named_parameters())


def test_qlora_on_cpu_quantises_the_body_keeps_the_head_and_learns(tiny_model_dir):
    import bitsandbytes as bnb
    import torch

    from ftlab.models.architectures import discover
    from ftlab.models.load import load_classifier, unquantised_layers
    from ftlab.models.sources import ModelSource

    args = MethodArgs(method="qlora", lora_r=8)
    base = load_classifier(ModelSource("tiny", str(tiny_model_dir), "local"), ["neg", "pos"], args)
    # 32 wide: bitsandbytes' CPU kernel reads inputs in blocks of 64, so of the six linears of each block only
    # ffn.lin2 (64 inputs) is held in 4 bits; the others stay in full precision, and the record says so.
    kept = unquantised_layers(base, discover(base).body_linears)
    assert len(kept) == 2 * 5 and all("32 inputs, not a multiple of 64" in reason for reason in kept.values())
    model = apply_method(base, args)
    quantised = [name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert len(quantised) == 2 and all(name.endswith("ffn.lin2.base_layer") for name in quantised)
    head = model.base_model.model.classifier.modules_to_save["default"]
    assert type(head) is torch.nn.Linear and head.weight.dtype == torch.float32
    assert not isinstance(model.base_model.model.pre_classifier.original_module, bnb.nn.Linear4bit)

    from transformers import AutoTokenizer

    from tests.conftest import synthetic_rows

    rows = synthetic_rows(32, seed=5)
    batch = AutoTokenizer.from_pretrained(tiny_model_dir)([t for t, _ in rows], padding=True, return_tensors="pt")
    labels = torch.tensor([1 if label == "pos" else 0 for _, label in rows])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    model.train()
    for _ in range(15):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_qlora_keeps_the_bert_pooler_unquantised(tmp_path):
    """BERT's head is bert.pooler.dense + classifier (MiniLM, the default model): a 4-bit pooler cannot train."""
    import bitsandbytes as bnb

    from ftlab.models.load import load_classifier
    from ftlab.models.sources import ModelSource

    # 64 wide: every block linear fits bitsandbytes' CPU 4-bit blocks.
    BertForSequenceClassification(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                             intermediate_size=128, vocab_size=100)).save_pretrained(tmp_path)
    args = MethodArgs(method="qlora")
    model = apply_method(load_classifier(ModelSource("bert", str(tmp_path), "local"), ["neg", "pos"], args), args)
    quantised = [name for name, module in model.named_modules() if isinstance(module, bnb.nn.Linear4bit)]
    assert len(quantised) == 2 * 6 and not any("pooler" in name for name in quantised)
    assert count_parameters(model).trainable > 0
