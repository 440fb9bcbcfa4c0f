import re

import pytest
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification)

from ftlab.config import MethodArgs
from ftlab.errors import ConfigError
from ftlab.models.architectures import ARCHITECTURES, architecture_of
from ftlab.models.methods import apply_method, count_parameters


@pytest.fixture(scope="module")
def distilbert_base_counts():
    """distilbert-base-uncased's exact shape (DistilBertConfig() defaults), 2 labels, each method applied."""
    counts = {}
    for method in ("full", "head", "lora"):
        model = DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))
        counts[method] = count_parameters(apply_method(model, MethodArgs(method=method, lora_r=8)))
    return counts


def test_distilbert_base_parameter_counts_are_exact(distilbert_base_counts):
    assert distilbert_base_counts["full"].trainable == 66_955_010
    assert distilbert_base_counts["head"].trainable == 592_130  # pre_classifier 768x768 + classifier
    # LoRA r=8 on q/k/v/out_lin/lin1/lin2 = 663,552, plus the head saved in full.
    assert distilbert_base_counts["lora"].trainable == 1_255_682


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


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ConfigError, match="model type 'gpt2' has no module map; supported: distilbert, bert"):
        architecture_of("gpt2")
    assert set(ARCHITECTURES) == {"distilbert", "bert", "roberta"}
