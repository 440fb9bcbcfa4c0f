"""`main.py predict --model_dir DIR TEXT...`: label texts with what a run saved. DIR is a run directory (its
model/), a seed directory of a --seeds run, a checkpoint, or a saved model or LoRA adapter directory
(ftlab.runs.model decides which model that is; ftlab.models.inference loads it)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ftlab.commands.job import Job
from ftlab.config import OPTIONAL_BOOL, POSITIVE_INT, TRUNCATIONS, OneLineParser
from ftlab.console import say
from ftlab.data.textfile import check_text_file
from ftlab.errors import ConfigError, DataError
from ftlab.models.inference import DEFAULT_MAX_LENGTH
from ftlab.runs.model import SavedModel, locate_export, locate_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ftlab.models.onnx import OnnxClassifier

NAME = "predict"
SUMMARY = "Label texts with the model of a run (its directory, a seed's or a checkpoint)."
BACKENDS = ("torch", "onnx")
INPUT_SUFFIXES = (".txt", ".csv", ".jsonl")


def build_parser(prog: str = "main.py") -> OneLineParser:
    parser = OneLineParser(prog=f"{prog} {NAME}", description="Label texts with the model a run saved.")
    parser.add_argument("texts", nargs="*", help="Texts to label (or use --file).")
    parser.add_argument("--model_dir", required=True, help="A run's directory (its model), a seed directory of a "
                        "--seeds run, a checkpoint directory, or a saved model or LoRA adapter directory; with "
                        "--backend onnx, what `export` wrote (or a run directory holding it in onnx/).")
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="torch: the saved model with PyTorch; "
                        "onnx: the graph `export` wrote (the quantised one where it was asked for), with ONNX "
                        "Runtime (default: torch).")
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
    return read_labelled_texts(path, text_column, pair_column=pair_column)[0]


def read_labelled_texts(path: str, text_column: str = "text", label_column: Optional[str] = None,
                        flag: str = "--file", pair_column: Optional[str] = None
                        ) -> tuple[list[Any], Optional[list[str]]]:
    """The texts of read_texts, and each row's `label_column` value as text where the file is a .csv / .jsonl
    that has that column in every row (else None). `flag`: the option that named the file, for errors."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{flag} {path}: no such file")
    suffix = file.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise DataError(f"{flag} {path}: expected a .txt, .csv or .jsonl file")
    check_text_file(file, flag, empty="no texts to label")
    with open(file, encoding="utf-8", newline="" if suffix == ".csv" else None) as handle:
        if suffix == ".txt":
            return [line.rstrip("\r\n") for line in handle if line.strip()], None
        if suffix == ".csv":
            rows = list(csv.DictReader(handle))
        else:
            try:
                rows = [json.loads(line) for line in handle if line.strip()]
            except json.JSONDecodeError as exc:
                raise DataError(f"{flag} {path}: not JSON Lines ({exc})") from None
    for column, option in ((text_column, "--text_column"), *([(pair_column, "--text_pair_column")] if pair_column
                                                              else [])):
        missing = [i for i, row in enumerate(rows) if not isinstance(row, dict) or row.get(column) is None]
        if missing:
            raise DataError(f"{flag} {path}: row {missing[0] + 1} has no column {column!r} (set {option})")
    labelled = label_column is not None and all(row.get(label_column) not in (None, "") for row in rows)
    labels = [str(row[label_column]) for row in rows] if labelled else None
    if pair_column:
        return [(str(row[text_column]), str(row[pair_column])) for row in rows], labels
    return [str(row[text_column]) for row in rows], labels


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
    # A directory without a model (or, for onnx, without an export) is refused before anything loads.
    saved = locate_export(args.model_dir) if args.backend == "onnx" else locate_model(args.model_dir)
    record = saved.record if isinstance(saved, SavedModel) else None  # an export's graph: its tokenizer decides
    trained_on_pairs = record is not None and record.data.get("data", {}).get("pairs")
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


def predict(model: Union[PreTrainedModel, OnnxClassifier], tokenizer: Optional[PreTrainedTokenizerBase],
            texts: list[Any], *, batch_size: int = 32, max_length: Optional[int] = None,
            truncation: Optional[str] = None) -> list[dict[str, Any]]:
    """One record per text or (text, second text) pair, as the model's task has it (ftlab.runs.labelling's
    label_records). Texts are cut as the model's run cut them (its saved truncation and max length; head and 512
    tokens when it saved none) unless `max_length` / `truncation` say otherwise. `model`: a torch classifier with its
    tokenizer, or an exported graph (tokenizer None: its own)."""
    from ftlab.runs.labelling import label_records, logits

    scores = logits(model, tokenizer, texts, batch_size=batch_size, max_length=max_length, truncation=truncation)
    return label_records(scores, texts, model.config)


def _line(record: dict[str, Any]) -> str:
    """A prediction's console line: the label (and its probability), the label set, or the number."""
    text = " ".join(record["text"].split())[:80]  # one output line per text, even for texts with newlines or tabs
    if "score" in record:
        return f"{record['score']:.4f}\t{text}"
    if "labels" in record:
        shown = ",".join(f"{name}:{record['probabilities'][name]:.2f}" for name in record["labels"])
        return f"{shown or '(none)'}\t{text}"
    return f"{record['label']}\t{max(record['probabilities'].values()):.4f}\t{text}"


def label_and_write(saved: Union[SavedModel, Path], texts: list[Any], args: Any) -> int:
    """`saved`: a run's model, or (--backend onnx) the graph an export deploys."""
    if isinstance(saved, Path):
        from ftlab.models.onnx import OnnxClassifier

        model, tokenizer = OnnxClassifier.load(saved), None
    else:
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
