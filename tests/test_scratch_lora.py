"""The hand-written LoRA (ftlab.methods.scratch_lora) against PEFT's, on tiny models built from configs."""
import copy
import math
import re

import pytest
import torch
from torch import nn
from transformers import (AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification,
                          DistilBertConfig, DistilBertForSequenceClassification)

from ftlab.config import MethodArgs
from ftlab.models.architectures import discover
from ftlab.methods import count_parameters
from ftlab.models.tuning import apply_method
from ftlab.methods.scratch_lora.layer import LoRALinear, apply_scratch_lora, merge_scratch_lora

# Same maths in the same operation order as PEFT, so float32 results agree far inside this.
ATOL = 1e-6


def _distilbert():
    return DistilBertForSequenceClassification(DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                                                vocab_size=100, num_labels=2))


def _bert():
    return BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                    intermediate_size=64, vocab_size=100, num_labels=2))


BUILDERS = {"distilbert": _distilbert, "bert": _bert}


def _batch(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 100, (4, 10), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0  # one padded row, so masking is exercised too
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 1, 0]))


def _scratch(model, model_type: str, r: int = 4, alpha: float = 16.0, **kwargs):
    arch = discover(model)
    return apply_scratch_lora(model, arch.target_regex(), r=r, alpha=alpha, dropout=0.0, train_modules=arch.head,
                              **kwargs)


def _lora_layers(model) -> dict[str, LoRALinear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, LoRALinear)}


@torch.no_grad()
def _randomise_b(model) -> None:
    """A fresh adapter has B = 0, which would make any comparison of adapted models trivially pass."""
    for layer in _lora_layers(model).values():
        layer.lora_B.normal_(std=0.5)


@pytest.mark.parametrize("model_type", ["distilbert", "bert"])
def test_same_logits_and_gradients_as_peft(model_type):
    torch.manual_seed(0)
    base = BUILDERS[model_type]()
    twin = copy.deepcopy(base)
    args = MethodArgs(method="lora", lora_r=4, lora_dropout=0.0)
    peft_model = apply_method(base, args)
    scratch = _scratch(twin, model_type, r=args.lora_r, alpha=args.lora_alpha)
    inner = peft_model.base_model.model  # the transformers model, with PEFT's wrappers in place

    scratch_layers = _lora_layers(scratch)
    peft_targets = {re.sub(r"\.lora_A\.default$", "", name) for name, _ in inner.named_modules()
                    if name.endswith(".lora_A.default")}
    assert set(scratch_layers) == peft_targets and len(peft_targets) == 12  # six linears in each of two blocks

    with torch.no_grad():
        for name, layer in scratch_layers.items():
            peft_layer = inner.get_submodule(name)
            assert layer.scaling == peft_layer.scaling["default"]
            peft_layer.lora_B["default"].weight.normal_(std=0.5)
            layer.lora_A.copy_(peft_layer.lora_A["default"].weight)
            layer.lora_B.copy_(peft_layer.lora_B["default"].weight)
        # PEFT trains (and runs) a copy of the head; move that copy away from the original so that a model
        # using the wrong one fails, then give the scratch model the same head.
        for head in discover(scratch).head:
            path = next(name for name, _ in scratch.named_modules() if name == head or name.endswith("." + head))
            peft_head = inner.get_submodule(path).modules_to_save["default"]
            for parameter in peft_head.parameters():
                parameter.normal_(std=0.3)
            scratch.get_submodule(path).load_state_dict(peft_head.state_dict())

    peft_model.eval()
    scratch.eval()
    batch = _batch()
    peft_out = peft_model(**batch)
    scratch_out = scratch(**batch)
    torch.testing.assert_close(scratch_out.logits, peft_out.logits, rtol=0, atol=ATOL)
    peft_out.loss.backward()
    scratch_out.loss.backward()

    for name, layer in scratch_layers.items():
        peft_layer = inner.get_submodule(name)
        for ours, theirs in ((layer.lora_A, peft_layer.lora_A["default"].weight),
                             (layer.lora_B, peft_layer.lora_B["default"].weight)):
            assert theirs.grad is not None and theirs.grad.abs().max() > 0, name
            torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=ATOL, msg=name)
    scratch_grads = {n: p.grad for n, p in scratch.named_parameters() if p.requires_grad and "lora_" not in n}
    peft_grads = {n.replace(".modules_to_save.default", ""): p.grad for n, p in inner.named_parameters()
                  if p.requires_grad and "lora_" not in n}
    assert scratch_grads.keys() == peft_grads.keys() and scratch_grads
    for name, grad in scratch_grads.items():
        torch.testing.assert_close(grad, peft_grads[name], rtol=0, atol=ATOL, msg=name)


@pytest.mark.parametrize("model_type", ["distilbert", "bert"])
@pytest.mark.parametrize("options", [{}, {"lora_head": True}, {"lora_target_modules": "value, output.dense"},
                                     {"lora_key": False, "lora_mlp": False, "lora_r": 2}])
def test_trainable_count_equals_peft(model_type, options):
    if model_type == "distilbert" and "lora_target_modules" in options:
        options = {"lora_target_modules": "v_lin, lin2"}
    torch.manual_seed(0)
    base = BUILDERS[model_type]()
    peft_count = count_parameters(apply_method(copy.deepcopy(base), MethodArgs(method="lora", **options)))
    scratch_count = count_parameters(apply_method(base, MethodArgs(method="scratch_lora", **options)))
    assert scratch_count.trainable == peft_count.trainable
    # PEFT keeps the original head beside its trainable copy, so only its total is larger.
    if not options.get("lora_head"):
        assert peft_count.total > scratch_count.total


def test_trainable_parameters_are_the_adapters_and_the_head():
    model = _scratch(_distilbert(), "distilbert", r=4)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    adapters = {name for name in trainable if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
    assert trainable - adapters == {"pre_classifier.weight", "pre_classifier.bias", "classifier.weight",
                                    "classifier.bias"}
    assert len(adapters) == 2 * 12
    # Per block: q/k/v/out_lin 4 * (32 + 32) * 4, lin1 and lin2 2 * (32 + 64) * 4; head 32*32+32 + 32*2+2.
    assert count_parameters(model).trainable == 2 * (4 * 256 + 2 * 384) + 1056 + 66


@pytest.mark.parametrize("model_type", ["distilbert", "bert"])
def test_fresh_adapter_leaves_the_model_unchanged(model_type):
    torch.manual_seed(0)
    base = BUILDERS[model_type]().eval()
    batch = _batch()
    with torch.no_grad():
        expected = base(**batch).logits
        model = _scratch(copy.deepcopy(base), model_type).eval()
        assert torch.equal(model(**batch).logits, expected)
    for layer in _lora_layers(model).values():
        # kaiming_uniform_(a=sqrt(5)) draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), like nn.Linear's weight.
        bound = 1 / math.sqrt(layer.base.in_features)
        assert 0.5 * bound < layer.lora_A.abs().max() <= bound
        assert not layer.lora_B.any()


@pytest.mark.parametrize("model_type", ["distilbert", "bert"])
def test_merged_model_matches_and_round_trips(model_type, tmp_path):
    torch.manual_seed(0)
    base = BUILDERS[model_type]()
    model = _scratch(copy.deepcopy(base), model_type).eval()
    _randomise_b(model)
    batch = _batch()
    with torch.no_grad():
        unmerged = model(**batch).logits
        assert not torch.allclose(unmerged, base.eval()(**batch).logits, atol=1e-3)  # the adapters do something
        merged_model = merge_scratch_lora(model)
        assert not _lora_layers(merged_model)
        assert merged_model.state_dict().keys() == base.state_dict().keys()
        torch.testing.assert_close(merged_model(**batch).logits, unmerged, rtol=0, atol=1e-5)

        merged_model.save_pretrained(tmp_path)
        reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
        assert type(reloaded) is type(base)
        torch.testing.assert_close(reloaded(**batch).logits, unmerged, rtol=0, atol=1e-5)


def test_scaling_plain_and_rank_stabilised():
    torch.manual_seed(0)
    linear = nn.Linear(8, 6)
    plain = LoRALinear(copy.deepcopy(linear), r=4, alpha=8)
    rs = LoRALinear(copy.deepcopy(linear), r=4, alpha=8, use_rslora=True)
    assert plain.scaling == 2.0
    assert rs.scaling == 8 / math.sqrt(4)
    with torch.no_grad():
        rs.lora_B.normal_()
        x = torch.randn(3, 8)
        expected = linear(x) + (8 / math.sqrt(4)) * x @ rs.lora_A.T @ rs.lora_B.T
        torch.testing.assert_close(rs(x), expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(rs.merged()(x), expected, rtol=0, atol=1e-5)

    model = _scratch(_distilbert(), "distilbert", r=4, alpha=8, use_rslora=True)
    assert {layer.scaling for layer in _lora_layers(model).values()} == {4.0}


def test_dropout_applies_to_the_adapter_input_only_in_training():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 16), r=4, alpha=4, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(8, 16)
    without = layer.base(x) + x @ layer.lora_A.T @ layer.lora_B.T
    layer.eval()
    torch.testing.assert_close(layer(x), without, rtol=0, atol=1e-5)
    layer.train()
    assert not torch.allclose(layer(x), without, atol=1e-3)
    # With B = 0 the adapter adds nothing, so in training mode the output is the base's exactly: dropout touches
    # only the adapter's input, never the base path (dropout there would zero and rescale the base's input).
    with torch.no_grad():
        layer.lora_B.zero_()
    assert layer.training
    torch.testing.assert_close(layer(x), layer.base(x), rtol=0, atol=0)


def test_nothing_matching_is_an_error_naming_the_pattern():
    model = _distilbert()
    with pytest.raises(ValueError, match=re.escape(r"pattern '.*\.no_such_linear'")):
        apply_scratch_lora(model, r".*\.no_such_linear", r=4, alpha=16, dropout=0.0, train_modules=())
    assert not _lora_layers(model)


def test_non_linear_targets_and_unknown_train_modules_are_errors():
    with pytest.raises(ValueError, match="must be torch.nn.Linear.*SelfAttention"):
        apply_scratch_lora(_distilbert(), r".*\.attention", r=4, alpha=16, dropout=0.0, train_modules=())
    with pytest.raises(ValueError, match="no module named 'pooler'"):
        apply_scratch_lora(_distilbert(), discover(_distilbert()).target_regex(), r=4, alpha=16, dropout=0.0,
                           train_modules=("pooler",))
