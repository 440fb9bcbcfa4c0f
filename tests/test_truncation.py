"""--truncation: which tokens of a long text are kept, with the special tokens in place, in training and predict."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ftlab.data.truncation import encode, head_tail_split, saved_truncation, truncation_settings
from tests.conftest import NEUTRAL

WORDS = NEUTRAL + ["good", "great", "wonderful", "superb", "lovely", "bad", "awful", "terrible"]  # 20 distinct
LONG = " ".join(WORDS)
SHORT = "a good film"


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _words(tokenizer, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("max_length", [8, 10, 17])
def test_head_tail_keeps_the_first_and_last_tokens_within_max_length(tokenizer, max_length):
    ids = encode(tokenizer, [LONG], max_length=max_length, truncation="head_tail")["input_ids"][0]
    head, tail = head_tail_split(max_length - 2)
    assert len(ids) == max_length
    assert _words(tokenizer, ids) == ["[CLS]", *WORDS[:head], *WORDS[len(WORDS) - tail:], "[SEP]"]
    assert head == (max_length - 2) // 4 and head >= 1


def test_head_and_tail_keep_one_end_and_short_texts_stay_whole(tokenizer):
    encoded = {strategy: encode(tokenizer, [LONG, SHORT], max_length=10, truncation=strategy)["input_ids"]
               for strategy in ("head", "tail", "head_tail")}
    assert _words(tokenizer, encoded["head"][0]) == ["[CLS]", *WORDS[:8], "[SEP]"]
    assert _words(tokenizer, encoded["tail"][0]) == ["[CLS]", *WORDS[-8:], "[SEP]"]
    assert encoded["head"][1] == encoded["tail"][1] == encoded["head_tail"][1] == tokenizer(SHORT)["input_ids"]
    # The tokenizer is left cutting the strategy's side, so that one saved with a tail model cuts tails by itself.
    encode(tokenizer, [LONG], max_length=10, truncation="tail")
    assert tokenizer.truncation_side == "left"
    encode(tokenizer, [LONG], max_length=10, truncation="head_tail")
    assert tokenizer.truncation_side == "right"


def test_head_tail_pads_a_batch_like_the_tokenizer(tokenizer):
    batch = encode(tokenizer, [SHORT, LONG], max_length=10, truncation="head_tail", padding=True,
                   return_tensors="pt")
    unpadded = encode(tokenizer, [SHORT, LONG], max_length=10, truncation="head_tail")
    assert batch["input_ids"].shape == (2, 10)
    assert batch["attention_mask"].sum(1).tolist() == [len(ids) for ids in unpadded["input_ids"]]
    assert batch["input_ids"][1].tolist() == unpadded["input_ids"][1]
    for strategy in ("head_tail", "tail"):  # the plain cuts pad through the tokenizer itself
        fixed = encode(tokenizer, [SHORT], max_length=10, truncation=strategy, padding="max_length")
        assert len(fixed["input_ids"][0]) == 10 and sum(fixed["attention_mask"][0]) == 5


def test_predict_cuts_texts_as_the_run_did_unless_told_otherwise(tiny_model_dir, tokenizer):
    from ftlab.commands.predict import predict

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    model.config.update(truncation_settings("tail", 6))  # what a run with --truncation tail --max_length 6 saves

    def positive(max_length: int, truncation: str) -> float:
        batch = encode(tokenizer, [LONG], max_length=max_length, truncation=truncation, padding=True,
                       return_tensors="pt")
        with torch.no_grad():
            return model(**batch).logits.softmax(-1)[0, 1].item()

    saved = predict(model, tokenizer, [LONG])[0]["probabilities"]["LABEL_1"]
    assert saved == pytest.approx(positive(6, "tail"), abs=1e-6)
    assert abs(saved - positive(6, "head")) > 1e-4  # the two ends of the text do read differently
    override = predict(model, tokenizer, [LONG], truncation="head", max_length=12)[0]["probabilities"]["LABEL_1"]
    assert override == pytest.approx(positive(12, "head"), abs=1e-6)
    assert saved_truncation(model.config) == ("tail", 6)
    # A model saved before ftlab recorded its cut (or by other code) was cut at its head, to a length unknown.
    assert saved_truncation(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).config) == ("head", None)


@pytest.mark.parametrize("max_length", [9, 10])
@pytest.mark.parametrize("style, prefix", [("llama", ["<s>"]), ("gpt2", [])])
def test_head_tail_works_with_decoder_tokenizers_without_cls_and_sep(style, prefix, max_length):
    """A decoder's tokenizer adds BOS only (Llama) or nothing (GPT-2): the head and tail shares are cut from what
    is left after those (at 9 tokens, counting a missing end token as one would keep one head word less)."""
    from tests.conftest import word_level_tokenizer

    decoder_tokenizer = word_level_tokenizer(style)
    ids = encode(decoder_tokenizer, [LONG], max_length=max_length, truncation="head_tail")["input_ids"][0]
    head, tail = head_tail_split(max_length - len(prefix))
    assert _words(decoder_tokenizer, ids) == [*prefix, *WORDS[:head], *WORDS[len(WORDS) - tail:]]
