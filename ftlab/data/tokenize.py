"""Tokenisation, cached on disk, and the batch collator."""
from __future__ import annotations

import hashlib
import json

import datasets
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from ftlab.assets import cache_root
from ftlab.data.pairs import encode_pairs, pair_template
from ftlab.data.truncation import encode as encode_texts
from ftlab.data.truncation import set_truncation_side


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Identify a tokenizer by what it does (its serialised vocabulary and rules), not by its path.

    The serialisation also holds the truncation/padding settings of the last call, which every call rewrites;
    they are per-call arguments (keyed separately), so they are left out."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        state = tokenizer.get_vocab()
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def tokenize_splits(splits: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase, max_length: int,
                    pad_to_max_length: bool, truncation: str = "head") -> datasets.DatasetDict:
    """Tokenise each split (its text, or its pairs of texts: ftlab.data.pairs) once per (tokenizer, max length,
    truncation, padding, split fingerprint); later runs reuse it. The tokenizer is left cutting the `truncation` way (ftlab.data.truncation), also on a cache hit.

    We key the cache ourselves instead of relying on datasets' hashing of the map function, which pickles the
    tokenizer and is not stable across processes for every tokenizer.
    """
    pairs = "text_pair" in splits["train"].column_names
    if pairs:
        pair_template(tokenizer)  # a decoder's stated template is installed before the tokenizer is fingerprinted
    tok_key = tokenizer_fingerprint(tokenizer)
    cache_dir = cache_root() / "tokenized"
    cache_dir.mkdir(parents=True, exist_ok=True)
    padding = "max_length" if pad_to_max_length else False
    set_truncation_side(tokenizer, truncation)

    def encode(batch: dict) -> dict:
        if pairs:
            encoded = encode_pairs(tokenizer, batch["text"], batch["text_pair"], max_length=max_length,
                                   truncation=truncation, padding=padding)
        else:
            encoded = encode_texts(tokenizer, batch["text"], max_length=max_length, truncation=truncation,
                                   padding=padding)
        # The real (non-pad) length: the Trainer's length grouping and the tokens/s figures both read it.
        encoded["length"] = [sum(mask) for mask in encoded["attention_mask"]]
        return encoded

    out = {}
    for name, split in splits.items():
        key_text = f"{tok_key}|{max_length}|{truncation}|{padding}|{split._fingerprint}"
        key = hashlib.sha256(key_text.encode()).hexdigest()[:24]
        out[name] = split.map(encode, batched=True, remove_columns=["text", "text_pair"] if pairs else ["text"],
                              new_fingerprint=key,
                              cache_file_name=str(cache_dir / f"{key}.arrow"), load_from_cache_file=True,
                              desc=f"tokenising {name}")
    return datasets.DatasetDict(out)


def make_collator(tokenizer: PreTrainedTokenizerBase, pad_to_max_length: bool,
                  pad_multiple: int = 8) -> DataCollatorWithPadding:
    # Padding to a multiple (8 by default) keeps tensor-core friendly shapes on GPU and costs nothing on CPU;
    # a coarser multiple bounds the number of shapes torch.compile sees.
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=None if pad_to_max_length else pad_multiple)
