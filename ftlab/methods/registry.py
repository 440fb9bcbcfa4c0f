"""The methods: every module of this package that declares some, in the order tables and --help list them."""
from __future__ import annotations

import difflib

from ftlab.errors import ConfigError
from ftlab.methods import adapters, lora, prompts, scratch_lora, subsets
from ftlab.methods.base import Method

METHODS: dict[str, Method] = {method.name: method for module in (subsets, lora, scratch_lora, adapters, prompts)
                              for method in module.METHODS}
DEFAULT_METHOD = "lora"  # what `main.py` trains when no method is named
# The methods a learning curve or a benchmark compares unless told otherwise: the three ends of the question
# (every weight, a low-rank adapter, the head alone).
STUDY_METHODS = ("lora", "full", "head")
ALIASES: dict[str, str] = {alias: method.name for method in METHODS.values() for alias in method.aliases}
# PEFT's types that are not methods here, and why (the docs' method table says so too).
LEFT_OUT = {
    "ADAPTION_PROMPT": "Llama-family causal LMs only (its gated prompts patch their attention modules)",
    "CPT": "causal LMs only (context-aware prompt tuning of a language-modelling loss)",
    "CARTRIDGE": "a trained key-value cache for causal LMs; PEFT builds it for models that take a cache only",
    "MULTITASK_PROMPT_TUNING": "needs a task id per example (multi-task prompts)",
    "POLY": "needs a task id per example (a mixture of skills per task)",
    "XLORA": "a mixture of already-trained LoRA experts (and use_cache off): not a way to train one",
    "SHADOW": "fails inside peft 0.21 on BERT-style encoders ('ShadowCarrier' object has no attribute 'view')",
    "TRAINABLE_TOKENS": "trains the embeddings of chosen token ids: a vocabulary tool, not a classifier method",
}


def names() -> tuple[str, ...]:
    return tuple(METHODS)


def canonical(name: str) -> str:
    """A method's name for any of its names or aliases (`fft` -> full); unknown names are left as they are."""
    return ALIASES.get(name, name)


def get(name: str) -> Method:
    try:
        return METHODS[canonical(name)]
    except KeyError:
        close = difflib.get_close_matches(name, [*METHODS, *ALIASES], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--method {name}: unknown method{hint}; one of {', '.join(METHODS)}") from None


def of_adapter(peft_type: str) -> Method:
    """The method that trains adapters of PEFT's type `peft_type` (an adapter_config.json's), e.g. LORA -> lora."""
    found = next((method for method in METHODS.values() if method.peft_type == peft_type), None)
    if found is None:
        raise ConfigError(f"a {peft_type} adapter: no method of this lab trains that kind (see the methods table)")
    return found


def flag_owners() -> dict[str, tuple[str, ...]]:
    """Every flag a method reads -> the methods that read it: the flags that belong to some methods only."""
    owners: dict[str, list[str]] = {}
    for method in METHODS.values():
        for flag in method.flags:
            owners.setdefault(flag, []).append(method.name)
    return {flag: tuple(methods) for flag, methods in owners.items()}
