"""Every method of the registry on every model family of the support table (tiny random models built from
transformers' own config classes, tests/test_families.py): it trains (gradients reach its parameters outside the
head, and a small step down them lowers the loss), or the method's pre-flight on the model's skeleton refuses it with
one line, before any weight loads. docs/guide/families.md shows this matrix, and the README a summary of it; the tests
fail when the page and the matrix, or the README and the page, differ (FTLAB_UPDATE_DOCS=1 rewrites both from the
matrix, run without xdist).

The tests' table, TINY, has a line per method: the flags that fit a method's default sizes to hidden width 64 (real
models are wide enough for the defaults). Adding a method is one module and one line here."""
from __future__ import annotations

import copy
import os
import re

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from ftlab import methods
from ftlab.config import Config
from ftlab.config.rules import settle_method_flags
from ftlab.errors import ConfigError
from ftlab.models.tuning import apply_method, check_method_fits
from tests.conftest import ROOT
from tests.test_families import FAMILIES, TYPES, _batch, _config

TINY: dict[str, dict] = {
    "full": {}, "head": {}, "selective": {}, "bitfit": {}, "lora": {}, "qlora": {},
    "scratch_lora": {}, "ia3": {}, "ln_tuning": {}, "beft": {}, "adalora": {}, "loha": {}, "lokr": {},
    "vera": {"lora_r": 32}, "pvera": {"lora_r": 32}, "vblora": {}, "randlora": {"lora_r": 8}, "fourierft": {},
    "waveft": {"peft_args": {"n_frequency": 256}}, "c3a": {}, "deft": {}, "delora": {}, "frod": {}, "glora": {},
    "gralora": {"lora_r": 8}, "hira": {"lora_r": 8}, "miss": {"lora_r": 8}, "shira": {"lora_r": 4},
    "tinylora": {}, "unilora": {}, "lily": {"lora_r": 8}, "peanut": {"lora_r": 8}, "psoft": {"lora_r": 8},
    "supertuning": {}, "adamss": {"peft_args": {"r": 16, "num_subspaces": 2}}, "osf": {}, "oft": {}, "boft": {},
    "hra": {}, "road": {}, "prompt_tuning": {"num_virtual_tokens": 4},
    "p_tuning": {"num_virtual_tokens": 4}, "prefix_tuning": {"num_virtual_tokens": 4},
}
# QLoRA is LoRA on a 4-bit base; its own tests load one (tests/test_families.py).
MATRIX_METHODS = [name for name in methods.names() if not methods.get(name).four_bit_base]
PAGE = ROOT / "docs" / "guide" / "families.md"
START, END = "<!-- support-matrix:start -->", "<!-- support-matrix:end -->"
README = ROOT / "README.md"
SUMMARY_START, SUMMARY_END = "<!-- support-summary:start -->", "<!-- support-summary:end -->"


def test_the_tests_table_has_a_line_per_method():
    assert list(TINY) == list(methods.names())


def method_args(name: str):
    cfg = Config()
    cfg.method.method = name
    for flag, value in TINY[name].items():
        setattr(cfg.method, flag, value)
    settle_method_flags(cfg, set(), set(TINY[name]))
    return cfg.method


def outcome(model_type: str, model: torch.nn.Module, name: str) -> str:
    """'trains', or 'refused: <the one line>'."""
    args = method_args(name)
    try:
        check_method_fits(_config(model_type), args)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return f"refused: {exc}"
    head = FAMILIES[model_type].head
    torch.manual_seed(0)
    tuned = apply_method(copy.deepcopy(model), args).train()
    batch, labels = _batch(), torch.tensor([0, 1, 1])
    loss = tuned(**batch, labels=labels).loss
    loss.backward()
    # Gradients reach the method's own parameters (not only the head's), and a small step down the gradient lowers
    # the loss: the forward and backward pass are right. (A step of the default learning rate can overshoot on a
    # tiny random model: ModernBERT's head has gradients of norm 30 there.)
    flowing = [n for n, p in tuned.named_parameters() if p.requires_grad and p.grad is not None and p.grad.abs().sum()
               and not any(f".{h}." in f".{n}" for h in head)]
    assert flowing or name == "head", (model_type, name)
    # ... and to every trainable parameter of the head (not to a copy of it that the forward pass never reads).
    stuck = [n for n, p in tuned.named_parameters() if p.requires_grad and p.grad is None
             and any(f".{h}." in f".{n}" for h in head)]
    assert not stuck, (model_type, name, stuck)
    trained = [p for p in tuned.parameters() if p.requires_grad and p.grad is not None]
    after = {}
    with torch.no_grad():
        for step in (1e-5, 1e-4, 1e-3):  # the smallest that the loss resolves in fp32
            for p in trained:
                p -= step * p.grad
            after[step] = tuned(**batch, labels=labels).loss.item()
            for p in trained:
                p += step * p.grad
            if after[step] < loss.item():
                break
    assert min(after.values()) < loss.item(), (model_type, name, loss.item(), after)
    return "trains"


def family_outcomes(model_type: str) -> dict[str, str]:
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(_config(model_type)).eval()
    return {name: outcome(model_type, model, name) for name in MATRIX_METHODS}


@pytest.fixture(scope="module")
def page_matrix() -> dict[str, dict[str, str]]:
    return read_page_matrix()


def read_page_matrix() -> dict[str, dict[str, str]]:
    """The matrix as the docs page states it: family -> method -> 'trains' or 'refused: ...'."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index(START):text.index(END)]
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]
    reasons = dict(re.findall(r"^- `([^`]+ × [^`]+)`: (.*)$", section, re.M))
    matrix: dict[str, dict[str, str]] = {}
    for row in rows:
        method = row[0].strip("`")
        for family, cell in zip(TYPES, row[1:]):
            matrix.setdefault(family, {})[method] = "trains" if cell == "✓" else \
                f"refused: {reasons.get(f'{method} × {family}', '?')}"
    return matrix


def render(matrix: dict[str, dict[str, str]]) -> str:
    header = "| method | " + " | ".join(f"`{t}`" for t in TYPES) + " |"
    lines = [START, "", header, "|---|" + "---|" * len(TYPES)]
    for name in MATRIX_METHODS:
        lines.append(f"| `{name}` | " + " | ".join("✓" if matrix[t][name] == "trains" else "✗" for t in TYPES) + " |")
    lines += ["", "Refused (the line the method's pre-flight prints, before any weight loads):", ""]
    lines += [f"- `{name} × {t}`: {matrix[t][name][len('refused: '):]}" for name in MATRIX_METHODS for t in TYPES
              if matrix[t][name] != "trains"]
    return "\n".join([*lines, "", END])


def render_summary(matrix: dict[str, dict[str, str]]) -> str:
    """The README's summary of the matrix: the families grouped by the methods that do not train on them."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for family in TYPES:
        refused = tuple(name for name in MATRIX_METHODS if matrix[family][name] != "trains")
        groups.setdefault(refused, []).append(family)
    lines = [SUMMARY_START, "", f"| families | of the {len(MATRIX_METHODS)} methods (qlora aside), these train |",
             "|---|---|"]
    for refused, families in groups.items():
        trained = [name for name in MATRIX_METHODS if name not in refused]
        if not refused:
            cell = "all"
        elif len(refused) <= len(trained):
            cell = "all but " + ", ".join(f"`{name}`" for name in refused)
        else:
            cell = "only " + ", ".join(f"`{name}`" for name in trained)
        lines.append(f"| {', '.join(f'`{family}`' for family in families)} | {cell} |")
    return "\n".join([*lines, "", SUMMARY_END])


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start):text.index(end) + len(end)]


_computed: dict[str, dict[str, str]] = {}


@pytest.mark.parametrize("model_type", TYPES)
def test_each_method_trains_on_the_family_or_is_refused_in_one_line(model_type, page_matrix):
    _computed[model_type] = family_outcomes(model_type)
    if os.environ.get("FTLAB_UPDATE_DOCS") == "1" and len(_computed) == len(TYPES):
        text = PAGE.read_text(encoding="utf-8")
        PAGE.write_text(text[:text.index(START)] + render(_computed) + text[text.index(END) + len(END):],
                        encoding="utf-8")
    assert _computed[model_type] == page_matrix.get(model_type), \
        f"{PAGE} disagrees with the tested matrix for {model_type} (FTLAB_UPDATE_DOCS=1 rewrites it)"


def test_the_readme_summary_is_the_pages_matrix():
    """Runs after the matrix (file order): with FTLAB_UPDATE_DOCS=1 the page has just been rewritten."""
    text = README.read_text(encoding="utf-8")
    summary = render_summary(read_page_matrix())
    if os.environ.get("FTLAB_UPDATE_DOCS") == "1":
        text = text.replace(_section(text, SUMMARY_START, SUMMARY_END), summary)
        README.write_text(text, encoding="utf-8")
    assert _section(text, SUMMARY_START, SUMMARY_END) == summary, \
        f"{README} disagrees with the matrix on {PAGE} (FTLAB_UPDATE_DOCS=1 rewrites it)"
