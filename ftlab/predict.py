"""`main.py predict`: label texts with a model a run saved, either a merged plain model or a LoRA adapter directory.

An adapter directory (PEFT `save_pretrained`) holds adapter_config.json, adapter_model.safetensors (the LoRA weights
and the head trained through modules_to_save), the tokenizer, and config.json: the classifier's config, which
carries the label names and count that the base checkpoint does not know (ftlab.models.export.save_adapter).
Both kinds of config.json also say how the run pooled (`ftlab_pooling`, re-attached here) and cut its texts
(`ftlab_truncation`, `ftlab_max_length`, the defaults of --truncation and --max_length).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftlab.config import POSITIVE_INT, TRUNCATIONS, OneLineParser
from ftlab.errors import ConfigError, DataError, ModelSourceError

if TYPE_CHECKING:  # torch/transformers are imported late so that the CLI can set the hub's offline switch first
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
DEFAULT_MAX_LENGTH = 512  # for models saved without the run's max length


def load_for_inference(model_dir: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The classifier saved in `model_dir`, pooling as it was trained to, and its tokenizer; the model is in eval
    mode."""
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelSourceError(f"--model_dir {model_dir}: no such directory")
    if (directory / ADAPTER_CONFIG).is_file():
        model, base_location = _load_adapter(directory)
    elif (directory / MODEL_CONFIG).is_file():
        from transformers import AutoModelForSequenceClassification

        try:
            model, base_location = AutoModelForSequenceClassification.from_pretrained(directory), None
        except OSError as exc:  # e.g. config.json without weights
            raise ModelSourceError(f"cannot load the model in {model_dir}: {str(exc).splitlines()[0]}") from None
    else:
        raise ModelSourceError(f"--model_dir {model_dir} holds neither {MODEL_CONFIG} (a saved model) nor "
                               f"{ADAPTER_CONFIG} (a saved LoRA adapter)")
    from ftlab.models.pooling import restore_pooling

    restore_pooling(model)
    model.eval()
    return model, _load_tokenizer(directory, base_location)


def _load_adapter(directory: Path) -> tuple[PreTrainedModel, str]:
    """Base model + adapter, by hand. AutoPeftModelForSequenceClassification loads the base with the base's own
    config (its label count, names LABEL_i), so a 3-label adapter on a 2-label checkpoint fails with a size mismatch;
    its `config` argument is the PEFT config, and the ignore_mismatched_sizes we would need goes on to PEFT's adapter
    loader too, where it would silently skip a saved head of the wrong shape."""
    from peft import PeftConfig
    from transformers import AutoConfig, AutoModelForSequenceClassification

    base_location = PeftConfig.from_pretrained(str(directory)).base_model_name_or_path
    if not base_location:
        raise ModelSourceError(f"{directory / ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    try:
        # An adapter saved without the classifier config falls back to the base's: right only when the label
        # count matches, and the labels are then called LABEL_0, LABEL_1, ...
        config = AutoConfig.from_pretrained(directory if (directory / MODEL_CONFIG).is_file() else base_location)
        # Like training (ftlab.models.load.load_classifier): a base checkpoint with another label count gets a
        # fresh head here, which the adapter's saved head then replaces.
        base, info = AutoModelForSequenceClassification.from_pretrained(
            base_location, config=config, ignore_mismatched_sizes=True, output_loading_info=True)
    except OSError as exc:
        raise ModelSourceError(f"cannot load the base model {base_location!r} that {directory / ADAPTER_CONFIG} "
                               f"names: {str(exc).splitlines()[0]}") from None
    from ftlab import methods

    # Loaded by the adapter's method: on the base as it needs it (prefix tuning reads the cache under its old name),
    # with its targets as named (LoRA on expert stacks).
    model = methods.of_adapter(PeftConfig.from_pretrained(str(directory)).peft_type).load(base, str(directory))
    # Weights missing from the base checkpoint were initialised at random both in training and here, so unless the
    # adapter saved them (modules_to_save), the predictions would be noise. This happens with --lora_head when the
    # base checkpoint has no head or one for another label count: the adapter holds only the head's LoRA deltas.
    saved = list(model.peft_config["default"].modules_to_save or ())
    mismatched = [entry[0] if isinstance(entry, tuple) else entry for entry in info["mismatched_keys"]]
    fresh = [key for key in [*info["missing_keys"], *mismatched] if not any(f".{name}." in f".{key}" for name in saved)]
    if fresh:
        raise ModelSourceError(f"the adapter in {directory} does not hold {', '.join(sorted(fresh))}, which the base "
                               f"model {base_location!r} lacks; predict with a merged model (--merge) instead")
    return model, base_location


def _load_tokenizer(directory: Path, base_location: str | None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    if (directory / TOKENIZER_CONFIG).is_file():
        return AutoTokenizer.from_pretrained(directory)
    if base_location is not None:  # an adapter saved without its tokenizer: the base's is the one it trained with
        return AutoTokenizer.from_pretrained(base_location)
    raise ModelSourceError(f"--model_dir {directory} has no tokenizer ({TOKENIZER_CONFIG})")


def predict(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], *, batch_size: int = 32,
            max_length: int | None = None, truncation: str | None = None) -> list[dict[str, Any]]:
    """One record per text: {"text", "label" (name), "label_id", "probabilities": {name: p}}. Texts are cut as the
    model's run cut them (its saved truncation and max length; head and 512 tokens when it saved none) unless
    `max_length` / `truncation` say otherwise."""
    import torch

    from ftlab.data.truncation import encode, saved_truncation

    saved_strategy, saved_length = saved_truncation(model.config)
    truncation = truncation or saved_strategy
    max_length = max_length or saved_length or DEFAULT_MAX_LENGTH
    model.eval()  # dropout off: the same text always gets the same answer
    id2label = model.config.id2label
    device = next(model.parameters()).device
    records: list[dict[str, Any]] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            # Dynamic padding: each batch is padded to its own longest text, not to max_length.
            encoded = encode(tokenizer, batch, max_length=max_length, truncation=truncation, padding=True,
                             return_tensors="pt")
            logits = model(**{key: value.to(device) for key, value in encoded.items()}).logits
            probabilities = torch.softmax(logits.float(), dim=-1).cpu()
            for text, probs in zip(batch, probabilities):
                label_id = int(probs.argmax())
                records.append({"text": text, "label": id2label[label_id], "label_id": label_id,
                                "probabilities": {id2label[i]: float(p) for i, p in enumerate(probs)}})
    return records


def read_texts(path: str, text_column: str = "text") -> list[str]:
    """.txt: one text per line (blank lines skipped); .csv / .jsonl: the `text_column` of each row."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--file {path}: no such file")
    suffix = file.suffix.lower()
    with open(file, encoding="utf-8", newline="" if suffix == ".csv" else None) as handle:
        if suffix == ".txt":
            return [line.rstrip("\r\n") for line in handle if line.strip()]
        if suffix == ".csv":
            rows = list(csv.DictReader(handle))
        elif suffix == ".jsonl":
            try:
                rows = [json.loads(line) for line in handle if line.strip()]
            except json.JSONDecodeError as exc:
                raise DataError(f"--file {path}: not JSON Lines ({exc})") from None
        else:
            raise DataError(f"--file {path}: expected a .txt, .csv or .jsonl file")
    missing = [i for i, row in enumerate(rows) if not isinstance(row, dict) or row.get(text_column) is None]
    if missing:
        raise DataError(f"--file {path}: row {missing[0] + 1} has no column {text_column!r} (set --text_column)")
    return [str(row[text_column]) for row in rows]


def build_parser(prog: str = "main.py predict") -> OneLineParser:
    parser = OneLineParser(prog=prog, description="Label texts with a model or LoRA adapter that a run saved.")
    parser.add_argument("texts", nargs="*", help="Texts to label (or use --file).")
    parser.add_argument("--model_dir", required=True, help="A saved model directory or LoRA adapter directory.")
    parser.add_argument("--file", help="Texts to label: .txt (one per line), .csv or .jsonl (see --text_column).")
    parser.add_argument("--text_column", default="text", help="--file .csv/.jsonl: the column of texts.")
    parser.add_argument("--batch_size", type=POSITIVE_INT, default=32, help="Texts per forward pass.")
    parser.add_argument("--max_length", type=POSITIVE_INT, help="Tokens per text; longer ones are cut (default: the "
                        f"run's, saved with the model, else {DEFAULT_MAX_LENGTH}).")
    parser.add_argument("--truncation", choices=TRUNCATIONS, help="Which tokens of a longer text are kept (default: "
                        "the run's, saved with the model, else head).")
    parser.add_argument("--output", help="Also write the predictions here: a .parquet or .csv file gets the run "
                        "prediction files' columns (example_id = row number, prediction, p_<label> per class), any "
                        "other name JSON Lines (text, label, label_id, probabilities).")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.texts) == bool(args.file):
        raise ConfigError("give the texts to label either as arguments or with --file, not both"
                          if args.texts else "no texts to label: pass them as arguments or with --file")
    texts = read_texts(args.file, args.text_column) if args.file else list(args.texts)
    if not texts:
        raise DataError(f"--file {args.file} holds no texts")

    from ftlab.hub import enter_offline_mode_if_unreachable

    # Before transformers reads its offline switch: an adapter's base model may be a hub id.
    enter_offline_mode_if_unreachable()
    model, tokenizer = load_for_inference(args.model_dir)
    records = predict(model, tokenizer, texts, batch_size=args.batch_size, max_length=args.max_length,
                      truncation=args.truncation)
    for record in records:
        text = " ".join(record["text"].split())  # one output line per text, even for texts with newlines or tabs
        print(f"{record['label']}\t{max(record['probabilities'].values()):.4f}\t{text[:80]}")
    if args.output:
        output = Path(args.output)
        if output.suffix.lower() in (".parquet", ".csv"):
            write_table(output, records, model.config.id2label)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            with open(output, "w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"wrote {len(records)} predictions to {output}", file=sys.stderr)
    return 0


def write_table(path: Path, records: list[dict[str, Any]], id2label: dict[int, str]) -> Path:
    """The columns of a run's prediction files (ftlab.runs.predictions), the true label left empty, so that what reads
    those reads these."""
    import numpy as np

    from ftlab.runs.predictions import SplitPredictions, write_predictions

    names = [id2label[i] for i in range(len(id2label))]
    split = SplitPredictions(example_ids=[str(row) for row in range(len(records))], labels=None,
                             predictions=np.array([record["label_id"] for record in records]),
                             scores=np.array([[record["probabilities"][name] for name in names]
                                              for record in records]))
    return write_predictions(path, split, names)
