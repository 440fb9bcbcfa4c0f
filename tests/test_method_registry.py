"""The method registry: one home per method. No other module names a method; a PEFT method's config fields read from
peft's source equal the imported class's; every trainable count equals PEFT's and the parameters that require
gradients, and for seven methods on MiniLM's shapes a count derived by hand; the docs' methods table and the
README's list are the registry's."""
from __future__ import annotations

import ast
import copy
import dataclasses
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from ftlab import methods
from ftlab.config import Config, MethodArgs
from ftlab.config.rules import settle_method_flags
from ftlab.methods.peft_fields import MISSING, class_fields
from ftlab.methods.peft_method import PeftMethod
from ftlab.methods.table import LIST_END, LIST_START, TABLE_END, TABLE_START, methods_list, methods_table
from tests.conftest import ROOT

PACKAGE = ROOT / "ftlab"
# String constants outside ftlab/methods/ that equal a method's name without meaning the method, and what they mean.
OTHER_MEANINGS = {
    ("ftlab/config/schema.py", "head"): "the truncation strategy 'head'",
    ("ftlab/data/tokenize.py", "head"): "the truncation strategy 'head'",
    ("ftlab/data/truncation.py", "head"): "the truncation strategy 'head'",
    ("ftlab/config/schema.py", "cls"): "the pooling 'cls' (the alias `cls` of head is a seed project's --task)",
    ("ftlab/models/pooling.py", "cls"): "the pooling 'cls'",
}


def _string_constants(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def names_of_methods_outside_the_registry() -> list[str]:
    names = {*methods.names(), *methods.registry.ALIASES}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("ftlab/methods/"):
            continue
        for value, line in _string_constants(path):
            if value in names and (relative, value) not in OTHER_MEANINGS:
                found.append(f"{relative}:{line} names the method {value!r}")
    return found


def test_no_module_outside_the_registry_names_a_method():
    assert names_of_methods_outside_the_registry() == []


def test_the_name_check_finds_a_method_named_elsewhere(tmp_path, monkeypatch):
    """The check can fail: a module that branches on a method's name is reported with its line."""
    fake = tmp_path / "ftlab"
    (fake / "training").mkdir(parents=True)
    (fake / "training" / "x.py").write_text('"""docstring naming lora is fine"""\nif method == "ia3":\n    pass\n')
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert names_of_methods_outside_the_registry() == ["ftlab/training/x.py:2 names the method 'ia3'"]


def test_every_module_of_the_package_that_declares_methods_is_listed():
    declared = set()
    for path in (PACKAGE / "methods").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "METHODS" for t in node.targets)
               for node in tree.body) and path.name != "registry.py":
            declared.add(path.relative_to(PACKAGE / "methods").with_suffix("").as_posix().replace("/__init__", ""))
    from ftlab.methods import registry

    listed = {module.__name__.split("ftlab.methods.")[1] for module in
              (registry.subsets, registry.lora, registry.scratch_lora, registry.adapters, registry.prompts)}
    assert declared == listed
    assert len(methods.names()) == len(set(methods.names())) == sum(
        len(module.METHODS) for module in (registry.subsets, registry.lora, registry.scratch_lora, registry.adapters,
                                           registry.prompts))


PEFT_METHODS = [m for m in methods.METHODS.values() if isinstance(m, PeftMethod)]


@pytest.mark.parametrize("method", PEFT_METHODS, ids=lambda m: m.name)
def test_config_fields_read_from_peft_source_equal_the_imported_class(method):
    from peft.config import PeftConfig
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils import PeftType

    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType[method.peft_type]]
    assert config_class.__name__ == method.config[1]
    framework = {f.name for f in dataclasses.fields(PeftConfig)}
    imported = {f.name: f for f in dataclasses.fields(config_class) if f.name not in framework}
    read = {f.name: f for f in class_fields(*method.config)}
    assert set(read) == set(imported)
    for name, field in read.items():
        if field.default is not MISSING:
            assert field.default == imported[name].default, name
    for flag, peft_field in getattr(method, "peft_flags", {}).items():
        assert peft_field in read, (flag, peft_field)


def _resolved(name: str, **flags) -> MethodArgs:
    cfg = Config()
    cfg.method.method = name
    for flag, value in flags.items():
        setattr(cfg.method, flag, value)
    settle_method_flags(cfg, set(), set(flags))
    return cfg.method


@pytest.fixture(scope="module")
def minilm() -> torch.nn.Module:
    """all-MiniLM-L6-v2's shapes (BERT, hidden 384, MLP 1,536, 6 layers, 12 heads), 2 labels, random weights: the
    counts depend on the shapes only."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                                    intermediate_size=1536, num_labels=2))


HIDDEN, MLP, LAYERS = 384, 1536, 6
HEAD = HIDDEN * HIDDEN + HIDDEN + HIDDEN * 2 + 2  # BERT's pooler dense and the classifier
SQUARE = 4  # q, k, v, the attention output: hidden -> hidden
BY_HAND = {
    "head": HEAD,
    # Biases: the embeddings' LayerNorm; per layer q, k, v, o, two LayerNorms, the MLP's two linears.
    "bitfit": HIDDEN + LAYERS * (SQUARE * HIDDEN + 2 * HIDDEN + MLP + HIDDEN) + HEAD,
    # Every LayerNorm's weight and bias: the embeddings' and two per layer.
    "ln_tuning": (1 + 2 * LAYERS) * 2 * HIDDEN + HEAD,
    # A vector per target: q, k, v, o scale their outputs, the MLP layers (feed-forward) their inputs.
    "ia3": LAYERS * (SQUARE * HIDDEN + HIDDEN + MLP) + HEAD,
    # Per target the vector over its outputs (lambda_b) and the one over the rank (lambda_d, rank 256).
    "vera": LAYERS * (SQUARE * (HIDDEN + 256) + (MLP + 256) + (HIDDEN + 256)) + HEAD,
    "lora": LAYERS * 8 * (SQUARE * 2 * HIDDEN + 2 * (HIDDEN + MLP)) + HEAD,
    # Two rank-8 pairs per target.
    "loha": 2 * LAYERS * 8 * (SQUARE * 2 * HIDDEN + 2 * (HIDDEN + MLP)) + HEAD,
    "prompt_tuning": 20 * HIDDEN + HEAD,
}


@pytest.mark.parametrize("name", list(BY_HAND))
def test_trainable_counts_on_minilm_equal_counts_from_module_shapes(name, minilm):
    from ftlab.models.tuning import apply_method

    model = apply_method(copy.deepcopy(minilm), _resolved(name))
    count = methods.count_parameters(model)
    assert count.trainable == BY_HAND[name]
    assert count.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # The docs' table says the same.
    assert f"| `{name}` | {BY_HAND[name]:,} |" in (ROOT / "docs" / "guide" / "methods.md").read_text()


def test_every_count_equals_peft_and_the_parameters_that_require_gradients():
    from transformers import BertConfig, BertForSequenceClassification

    from ftlab.models.tuning import apply_method
    from tests.test_method_matrix import TINY

    torch.manual_seed(0)
    base = BertForSequenceClassification(BertConfig(vocab_size=1000, hidden_size=64, intermediate_size=128,
                                                    num_hidden_layers=2, num_attention_heads=4, num_labels=2))
    for name in methods.names():
        if methods.get(name).four_bit_base or name == "prefix_tuning":  # no 4-bit base here; a decoder's method
            continue
        model = apply_method(copy.deepcopy(base), _resolved(name, **TINY[name]))
        by_grad = sum(p.numel() for p in model.parameters() if p.requires_grad)
        count = methods.count_parameters(model)
        assert count.trainable == by_grad, name
        if hasattr(model, "get_nb_trainable_parameters"):
            assert count.trainable == model.get_nb_trainable_parameters()[0], name


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end) + len(end)]


@pytest.mark.parametrize("page, start, end, written", [
    ("docs/guide/methods.md", TABLE_START, TABLE_END, methods_table),
    ("README.md", LIST_START, LIST_END, methods_list),
])
def test_the_docs_methods_table_and_the_readme_list_are_the_registrys(page, start, end, written):
    path = ROOT / page
    text = path.read_text(encoding="utf-8")
    if os.environ.get("FTLAB_UPDATE_DOCS") == "1":
        text = text.replace(_section(text, start, end), written())
        path.write_text(text, encoding="utf-8")
    assert _section(text, start, end) == written(), f"{page} differs from the registry (FTLAB_UPDATE_DOCS=1 writes it)"
    if page == "README.md":  # every method by name, then every left-out PEFT type
        named = re.findall(r"`([a-z0-9_]+)`", _section(text, start, end))
        assert named == [*methods.names(), *(peft_type.lower() for peft_type in methods.LEFT_OUT)]
