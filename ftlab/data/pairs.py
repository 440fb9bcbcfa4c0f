"""Pairs of texts (--text_pair_column): encoded as one input with the tokenizer's own pair template ([CLS] A [SEP] B
[SEP] for BERT, <s> A </s></s> B </s> for RoBERTa), the --max_length budget shared between the two.

The budget is shared the way transformers shares it (`truncation="longest_first"`): tokens come off the longer text
until both fit, so a short hypothesis is never cut to make room for a long premise. Each text then keeps its
allotment the --truncation way: its head, its tail, or (head_tail) the first quarter and the last three quarters,
spliced from a head-cut and a tail-cut encoding as ftlab.data.truncation does for one text.

A tokenizer whose pair template puts nothing between the two texts (GPT-2's, Qwen's: decoders written for one
text) would run the two together; it gets a stated template instead, "A <eos> B": its end-of-text token between
them (the decoder's classifier reads the last token, after both). The template is installed in the tokenizer, so
it is saved with the model and predict encodes pairs the same way; the record names it.
"""
from __future__ import annotations

from typing import Any, Optional

from transformers import BatchEncoding, PreTrainedTokenizerBase

from ftlab.data.truncation import head_tail_split, set_truncation_side

SHARED_BUDGET = "longest_first: tokens come off the longer text until both fit in --max_length"


def _render(tokenizer: PreTrainedTokenizerBase, encoding: BatchEncoding) -> str:
    """A template as text: special tokens as themselves, each text as A or B."""
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
    parts: list[str] = []
    for token, sequence in zip(tokens, encoding.sequence_ids(0)):
        if sequence is None:
            parts.append(token)
        elif not parts or parts[-1] != "AB"[sequence]:
            parts.append("AB"[sequence])
    return " ".join(parts)


def _separated(encoding: BatchEncoding) -> bool:
    sequences = encoding.sequence_ids(0)
    last_a = max(i for i, s in enumerate(sequences) if s == 0)
    first_b = min(i for i, s in enumerate(sequences) if s == 1)
    return any(s is None for s in sequences[last_a:first_b])


def pair_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """The template pairs are encoded with (installing the stated one where the tokenizer's own joins the texts
    with nothing between them), e.g. '[CLS] A [SEP] B [SEP]'."""
    encoding = tokenizer(["a"], ["b"])
    if not _separated(encoding):
        _install_separator(tokenizer)
        encoding = tokenizer(["a"], ["b"])
    return _render(tokenizer, encoding)


def _install_separator(tokenizer: PreTrainedTokenizerBase) -> None:
    from tokenizers import processors

    separator = tokenizer.eos_token or tokenizer.sep_token
    if separator is None:
        raise ValueError("the tokenizer's pair template joins the texts with nothing between them, and it has no "
                         "end-of-text or separator token to put there")
    single = _render(tokenizer, tokenizer(["a"])).split()  # what it adds around one text, kept as it is
    specials = {token: tokenizer.convert_tokens_to_ids(token) for token in [*single, separator] if token != "A"}
    pair = " ".join(f"$A:0 {separator}:0 $B:1" if token == "A" else f"{token}:0" for token in single)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=" ".join("$A" if token == "A" else token for token in single), pair=pair,
        special_tokens=list(specials.items()))


def encode_pairs(tokenizer: PreTrainedTokenizerBase, texts: list[str], pairs: list[str], *, max_length: int,
                 truncation: str, padding: bool | str = False, return_tensors: Optional[str] = None) -> BatchEncoding:
    """Tokenise (text, pair) rows with the tokenizer's pair template, at most `max_length` tokens in all, each text
    cut the `truncation` way within its share of the budget."""
    set_truncation_side(tokenizer, truncation)
    if truncation != "head_tail":
        return tokenizer(texts, pairs, truncation="longest_first", max_length=max_length, padding=padding,
                         return_tensors=return_tensors)
    heads = tokenizer(texts, pairs, truncation="longest_first", max_length=max_length)
    tokenizer.truncation_side = "left"
    try:
        tails = tokenizer(texts, pairs, truncation="longest_first", max_length=max_length)
    finally:
        set_truncation_side(tokenizer, truncation)
    columns: dict[str, list[Any]] = {key: [] for key in heads}
    for index in range(len(texts)):
        head_ids, tail_ids = heads.sequence_ids(index), tails.sequence_ids(index)
        # The allotment does not depend on the side cut, so both encodings hold as many tokens of each text.
        picks: list[tuple[Any, int]] = []
        for position, sequence in enumerate(head_ids):
            if sequence is None:
                picks.append((heads, position))
            elif position == 0 or head_ids[position - 1] != sequence:
                in_head = [p for p, s in enumerate(head_ids) if s == sequence]
                in_tail = [p for p, s in enumerate(tail_ids) if s == sequence]
                head, tail = head_tail_split(len(in_head))
                picks += [(heads, p) for p in in_head[:head]] + [(tails, p) for p in in_tail[len(in_tail) - tail:]]
        for key, values in columns.items():
            values.append([source[key][index][position] for source, position in picks])
    if padding is False and return_tensors is None:
        return BatchEncoding(columns)
    return tokenizer.pad(columns, padding=padding, max_length=max_length if padding == "max_length" else None,
                         return_tensors=return_tensors)
