"""Which tokens of a text longer than --max_length are kept: its head, its tail, or both (head_tail).

Sun et al. (2019), "How to Fine-Tune BERT for Text Classification", found that keeping the first 128 and the last
382 of 510 tokens classifies long IMDB reviews better than either end alone: a review's verdict is often in its
last sentences. head_tail keeps the same shares of any budget.

The tokenizer cuts heads and tails itself (its `truncation_side`); it has no setting that keeps both ends, so
head_tail splices a head-cut and a tail-cut encoding of the same text, which keeps the tokenizer's own special
tokens and token type ids in place.
"""
from __future__ import annotations

from itertools import takewhile
from typing import Any, Optional

from transformers import BatchEncoding, PreTrainedConfig, PreTrainedTokenizerBase

HEAD_SHARE = 0.25  # of the token budget (max_length less the special tokens) that head_tail gives the text's start
# config.json attributes of a saved model: predict cuts texts the way the run did unless told otherwise.
TRUNCATION_KEY = "ftlab_truncation"
MAX_LENGTH_KEY = "ftlab_max_length"
# config.json attributes of what a task's outputs mean: a regression's (mean, sd) to map outputs back to the targets'
# scale, a multi-label run's thresholds (one per label) tuned on validation.
LABEL_SCALING_KEY = "ftlab_label_scaling"
THRESHOLDS_KEY = "ftlab_thresholds"
_SPECIAL_MASK = "special_tokens_mask"


def head_tail_split(budget: int) -> tuple[int, int]:
    """(head, tail) token counts for a text-token budget: a quarter (rounded down) and the rest."""
    head = int(budget * HEAD_SHARE)
    return head, budget - head


def set_truncation_side(tokenizer: PreTrainedTokenizerBase, truncation: str) -> None:
    """The tokenizer's own cut for a strategy: 'left' for tail, else 'right'. A tokenizer saved with a model keeps
    it, so that code without ftlab cuts tail-trained models' texts the same way."""
    tokenizer.truncation_side = "left" if truncation == "tail" else "right"


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], *, max_length: int, truncation: str,
           padding: bool | str = False, return_tensors: Optional[str] = None) -> BatchEncoding:
    """Tokenise `texts` with the tokenizer's special tokens, each text cut to at most `max_length` tokens in all
    the `truncation` way (head, tail or head_tail). Padding as the tokenizer's own `padding` argument."""
    set_truncation_side(tokenizer, truncation)
    if truncation != "head_tail":
        return tokenizer(texts, truncation=True, max_length=max_length, padding=padding,
                         return_tensors=return_tensors)
    heads = tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True)
    tokenizer.truncation_side = "left"
    try:
        tails = tokenizer(texts, truncation=True, max_length=max_length)
    finally:
        set_truncation_side(tokenizer, truncation)
    columns: dict[str, list[Any]] = {key: [] for key in tails}
    for index, special in enumerate(heads[_SPECIAL_MASK]):
        if len(special) < max_length:  # it fits: both encodings are the whole text (a cut one fills max_length)
            head_end, tail_start = max_length, max_length
        else:
            prefix, suffix = _leading_ones(special), _leading_ones(special[::-1])  # [CLS] ... [SEP], <s> ... </s>
            head, tail = head_tail_split(max_length - prefix - suffix)
            head_end, tail_start = prefix + head, max_length - tail - suffix
        for key, values in columns.items():
            values.append(heads[key][index][:head_end] + tails[key][index][tail_start:])
    if padding is False and return_tensors is None:
        return BatchEncoding(columns)
    return tokenizer.pad(columns, padding=padding, max_length=max_length if padding == "max_length" else None,
                         return_tensors=return_tensors)


def _leading_ones(mask: list[int]) -> int:
    return sum(1 for _ in takewhile(bool, mask))


def truncation_settings(truncation: str, max_length: int) -> dict[str, Any]:
    """What a model's config.json carries about how its texts were cut."""
    return {TRUNCATION_KEY: truncation, MAX_LENGTH_KEY: max_length}


UNRECORDED = "head"  # how a model or run that recorded no truncation cut its texts: at the tokenizer's default


def saved_truncation(config: PreTrainedConfig) -> tuple[str, Optional[int]]:
    """(truncation, max_length) a saved model was trained with; a model saved without them was cut at its head."""
    return getattr(config, TRUNCATION_KEY, None) or UNRECORDED, getattr(config, MAX_LENGTH_KEY, None)
