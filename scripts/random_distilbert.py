"""Write a randomly initialised DistilBERT-base classifier and its tokenizer to a directory, for speed work.

No DistilBERT weights can be had offline, but distilbert-base-uncased's architecture (and so its FLOPs and
memory) is fully given by `DistilBertConfig()`, and its WordPiece vocabulary is the one the packaged
all-MiniLM-L6-v2 mirror ships. Accuracy figures from this model mean nothing; speed figures are exact.

    python scripts/random_distilbert.py runs/distilbert-random
    python main.py bench --methods full,head,lora,qlora --model runs/distilbert-random
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(out: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from ftlab.config import DEFAULT_MODEL
    from ftlab.models.sources import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL).location)
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=tokenizer.vocab_size, num_labels=2))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"{out}: DistilBERT-base, {sum(p.numel() for p in model.parameters()):,} parameters, random weights")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/random_distilbert.py OUT_DIR")
    main(sys.argv[1])
