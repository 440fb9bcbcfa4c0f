"""`main.py predict --model_dir DIR TEXT...`: label texts with what a run saved. DIR is a run directory (its
model/), a seed directory of a --seeds run, a checkpoint, or a saved model or LoRA adapter directory
(ftlab.runs.model decides which model that is; ftlab.models.inference loads it)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ftlab.commands.job import Job
from ftlab.config import OPTIONAL_BOOL, POSITIVE_INT, TRUNCATIONS, OneLineParser
from ftlab.console import say
from ftlab.data.textfile import check_text_file
from ftlab.errors import ConfigError, DataError
from ftlab.runs.model import SavedModel, locate_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

NAME = "predict"
SUMMARY = "Label texts with the model of a run (its directory, a seed's or a checkpoint)."
DEFAULT_MAX_LENGTH = 512  # for models saved without the run's max length
INPUT_SUFFIXES = (".txt", ".csv", ".jsonl")


def build_parser(prog: str = "main.py") -> OneLineParser:
    parser = OneLineParser(prog=f"{prog} {NAME}", description="Label texts with the model a run saved.")
    parser.add_argument("texts", nargs="*", help="Texts to label (or use --file).")
    parser.add_argument("--model_dir", required=True, help="A run's directory (its model), a seed directory of a "
                        "--seeds run, a checkpoint directory, or a saved model or LoRA adapter directory.")
    parser.add_argument("--file", help="Texts to label: .txt (one per line), .csv or .jsonl (see --text_column), "
                        "UTF-8.")
    parser.add_argument("--text_column", default="text", help="--file .csv/.jsonl: the column of texts (default: "
                        "text).")
    parser.add_argument("--text_pair_column", help="--file .csv/.jsonl: the column of second texts, for a model "
                        "trained on pairs (--text_pair_column of its run).")
    parser.add_argument("--batch_size", type=POSITIVE_INT, default=32, help="Texts per forward pass (default: 32).")
    parser.add_argument("--max_length", type=POSITIVE_INT, help="Tokens per text; longer ones are cut (default: the "
                        f"run's, saved with the model, else {DEFAULT_MAX_LENGTH}).")
    parser.add_argument("--truncation", choices=TRUNCATIONS, help="Which tokens of a longer text are kept (default: "
                        "the run's, saved with the model, else head).")
    parser.add_argument("--output", help="Also write the predictions to this file: a .parquet or .csv file gets the "
                        "run prediction files' columns (example_id = row number, prediction, p_<label> per class; "
                        "multi-label: prediction_<label> and p_<label>; regression: prediction), any other name JSON "
                        "Lines (text, label, label_id, probabilities; multi-label: labels, probabilities; "
                        "regression: score).")
    parser.add_argument("--verbose", nargs="?", const=True, default=False, type=OPTIONAL_BOOL,
                        help="Show the libraries' notices and progress bars while the model loads (default: false).")
    return parser


def read_texts(path: str, text_column: str = "text", pair_column: Optional[str] = None) -> list[Any]:
    """.txt: one text per line (blank lines skipped); .csv / .jsonl: the `text_column` of each row (with
    `pair_column`: (text, second text) of each row)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--file {path}: no such file")
    suffix = file.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise DataError(f"--file {path}: expected a .txt, .csv or .jsonl file")
    check_text_file(file, "--file", empty="no texts to label")
    with open(file, encoding="utf-8", newline="" if suffix == ".csv" else None) as handle:
        if suffix == ".txt":
            return [line.rstrip("\r\n") for line in handle if line.strip()]
        if suffix == ".csv":
            rows = list(csv.DictReader(handle))
        else:
            try:
                rows = [json.loads(line) for line in handle if line.strip()]
            except json.JSONDecodeError as exc:
                raise DataError(f"--file {path}: not JSON Lines ({exc})") from None
    for column, flag in ((text_column, "--text_column"), *([(pair_column, "--text_pair_column")] if pair_column
                                                            else [])):
        missing = [i for i, row in enumerate(rows) if not isinstance(row, dict) or row.get(column) is None]
        if missing:
            raise DataError(f"--file {path}: row {missing[0] + 1} has no column {column!r} (set {flag})")
    if pair_column:
        return [(str(row[text_column]), str(row[pair_column])) for row in rows]
    return [str(row[text_column]) for row in rows]


def prepare(argv: list[str]) -> Job:
    args = build_parser().parse_args(argv)
    if bool(args.texts) == bool(args.file):
        raise ConfigError("give the texts to label either as arguments or with --file, not both"
                          if args.texts else "no texts to label: pass them as arguments or with --file")
    if args.text_pair_column and not args.file:
        raise ConfigError("--text_pair_column reads the second texts from --file (a .csv or .jsonl)")
    texts = read_texts(args.file, args.text_column, args.text_pair_column) if args.file else list(args.texts)
    if not texts:
        raise DataError(f"--file {args.file} holds no texts")
    if args.output and Path(args.output).is_dir():
        raise ConfigError(f"--output {args.output}: a directory; --output names the file to write the predictions to")
    saved = locate_model(args.model_dir)  # a directory without a model is refused before anything loads
    trained_on_pairs = saved.record is not None and saved.record.data.get("data", {}).get("pairs")
    if trained_on_pairs and not args.text_pair_column:
        raise ConfigError(f"--model_dir {args.model_dir}: its run was trained on pairs of texts; give them with "
                          f"--file and --text_pair_column")
    return Job(run=lambda stop: label_and_write(saved, texts, args), verbose=args.verbose)


def load_saved(saved: SavedModel, verbose: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model of `saved`, its config completed with what the run's record says (labels, pooling, truncation)
    where the directory's own config does not (a checkpoint of a run from before checkpoints carried it)."""
    from ftlab.data.truncation import UNRECORDED, truncation_settings
    from ftlab.models.inference import load_for_inference
    from ftlab.models.pooling import POOLING_KEY

    if saved.note:
        say(saved.note, file=sys.stderr)
    record = saved.record
    if record is None:
        return load_for_inference(str(saved.directory), verbose=verbose)
    settings = {POOLING_KEY: record.pooling,
                **truncation_settings(record.truncation or UNRECORDED, record.option("data", "max_length"))}
    return load_for_inference(str(saved.directory), record.label_names, settings, verbose)


def predict(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: list[Any], *, batch_size: int = 32,
            max_length: Optional[int] = None, truncation: Optional[str] = None) -> list[dict[str, Any]]:
    """One record per text (or (text, second text) pair), as the model's task has it (its config's problem_type):
    single-label {"text", "label" (name), "label_id", "probabilities": {name: p}}; multi-label {"text", "labels"
    (the names at or above their thresholds, tuned on validation by the run), "probabilities"}; regression {"text",
    "score"} on the targets' scale. Texts are cut as the model's run cut them (its saved truncation and max length;
    head and 512 tokens when it saved none) unless `max_length` / `truncation` say otherwise."""
    import torch

    from ftlab import tasks
    from ftlab.data.pairs import encode_pairs
    from ftlab.data.truncation import LABEL_SCALING_KEY, THRESHOLDS_KEY, encode, saved_truncation

    saved_strategy, saved_length = saved_truncation(model.config)
    truncation = truncation or saved_strategy
    max_length = max_length or saved_length or DEFAULT_MAX_LENGTH
    model.eval()  # dropout off: the same text always gets the same answer
    id2label = model.config.id2label
    problem_type = model.config.problem_type or tasks.SINGLE_LABEL
    thresholds = getattr(model.config, THRESHOLDS_KEY, None) or [0.5] * len(id2label)
    mean, std = getattr(model.config, LABEL_SCALING_KEY, None) or (0.0, 1.0)
    device = next(model.parameters()).device
    records: list[dict[str, Any]] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            # Dynamic padding: each batch is padded to its own longest text, not to max_length.
            if batch and isinstance(batch[0], tuple):
                encoded = encode_pairs(tokenizer, [a for a, _ in batch], [b for _, b in batch], max_length=max_length,
                                       truncation=truncation, padding=True, return_tensors="pt")
            else:
                encoded = encode(tokenizer, batch, max_length=max_length, truncation=truncation, padding=True,
                                 return_tensors="pt")
            logits = model(**{key: value.to(device) for key, value in encoded.items()}).logits.float().cpu()
            for text, row in zip(batch, logits):
                text = " | ".join(text) if isinstance(text, tuple) else text
                if problem_type == tasks.REGRESSION:
                    records.append({"text": text, "score": float(row[0]) * std + mean})
                    continue
                probs = torch.sigmoid(row) if problem_type == tasks.MULTI_LABEL else torch.softmax(row, dim=-1)
                probabilities = {id2label[i]: float(p) for i, p in enumerate(probs)}
                if problem_type == tasks.MULTI_LABEL:
                    records.append({"text": text, "labels": [id2label[i] for i, p in enumerate(probs)
                                                             if p >= thresholds[i]], "probabilities": probabilities})
                    continue
                label_id = int(probs.argmax())
                records.append({"text": text, "label": id2label[label_id], "label_id": label_id,
                                "probabilities": probabilities})
    return records


def _line(record: dict[str, Any]) -> str:
    """A prediction's console line: the label (and its probability), the label set, or the number."""
    text = " ".join(record["text"].split())[:80]  # one output line per text, even for texts with newlines or tabs
    if "score" in record:
        return f"{record['score']:.4f}\t{text}"
    if "labels" in record:
        shown = ",".join(f"{name}:{record['probabilities'][name]:.2f}" for name in record["labels"])
        return f"{shown or '(none)'}\t{text}"
    return f"{record['label']}\t{max(record['probabilities'].values()):.4f}\t{text}"


def label_and_write(saved: SavedModel, texts: list[str], args: Any) -> int:
    model, tokenizer = load_saved(saved, args.verbose)
    records = predict(model, tokenizer, texts, batch_size=args.batch_size, max_length=args.max_length,
                      truncation=args.truncation)
    for record in records:
        print(_line(record))
    if args.output:
        output = Path(args.output)
        if output.suffix.lower() in (".parquet", ".csv"):
            write_table(output, records, model.config.id2label)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            with open(output, "w", encoding="utf-8") as handle:
                for record in records:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        say(f"wrote {len(records)} predictions to {output}", file=sys.stderr)
    return 0


def write_table(path: Path, records: list[dict[str, Any]], id2label: dict[int, str]) -> Path:
    """The columns of a run's prediction files (ftlab.runs.predictions), the true label left empty, so that what
    reads those reads these."""
    import numpy as np

    from ftlab.runs.predictions import SplitPredictions, write_predictions

    names = [id2label[i] for i in range(len(id2label))]
    ids = [str(row) for row in range(len(records))]
    if records and "score" in records[0]:
        values = np.array([record["score"] for record in records], dtype=np.float64)
        split = SplitPredictions(ids, None, values, values[:, None])
    else:
        scores = np.array([[record["probabilities"][name] for name in names] for record in records])
        predictions = (np.array([[name in record["labels"] for name in names] for record in records], dtype=int)
                       if records and "labels" in records[0] else np.array([record["label_id"] for record in records]))
        split = SplitPredictions(ids, None, predictions, scores)
    return write_predictions(path, split, names)
