"""Per-example predictions: one row per example with a stable id, the true label, the predicted label and a float
column per class. Paired significance tests and error analysis read them; pandas and datasets read the files as
they are (`pd.read_parquet`, `datasets.load_dataset("parquet", data_files=...)`).

Columns: `example_id` (string: source split and row, e.g. "train/17", or the input's row number for `predict`),
then by task (ftlab.tasks):
- single-label: `label` (int; empty where unknown, as for `predict`), `prediction` (int), then `p_<label name>`
  (probabilities) or `score_<label name>` (the SVM's decision scores) per class, in label-id order;
- multi-label: `label_<name>` and `prediction_<name>` (0/1; the labels empty where unknown) and `p_<name>` (or
  `score_<name>`) per label;
- regression: `label` and `prediction` (floats, on the targets' own scale).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

PREDICTIONS_DIR = "predictions"
SPLITS = ("validation", "test")


@dataclass
class SplitPredictions:
    example_ids: Sequence[str]
    labels: Optional[np.ndarray]  # true label ids (multi-label: 0/1 rows; regression: numbers); None where unknown
    predictions: np.ndarray  # as the labels
    scores: np.ndarray  # (examples, classes or labels): probabilities, or decision scores; regression: (examples, 1)
    score_kind: str = "p"  # column prefix: "p" for probabilities, "score" for decision scores


def to_frame(split: SplitPredictions, label_names: Sequence[str]) -> "pd.DataFrame":
    import pandas as pd

    predictions = np.asarray(split.predictions)
    columns: dict[str, Any] = {"example_id": pd.array([str(i) for i in split.example_ids], dtype="string")}
    if predictions.ndim == 2:  # multi-label
        labels = None if split.labels is None else np.asarray(split.labels)
        for k, name in enumerate(label_names):
            columns[f"label_{name}"] = (pd.array(labels[:, k], dtype="int64") if labels is not None
                                        else pd.array([None] * len(predictions), dtype="Int64"))
        columns.update({f"prediction_{name}": predictions[:, k].astype(np.int64) for k, name in enumerate(label_names)})
    elif np.issubdtype(predictions.dtype, np.floating):  # regression: the scores are the predictions
        columns["label"] = (np.asarray(split.labels, dtype=np.float64) if split.labels is not None
                            else pd.array([None] * len(predictions), dtype="Float64"))
        columns["prediction"] = predictions.astype(np.float64)
        return pd.DataFrame(columns)
    else:
        columns["label"] = (pd.array(split.labels, dtype="int64") if split.labels is not None
                            else pd.array([None] * len(predictions), dtype="Int64"))
        columns["prediction"] = predictions.astype(np.int64)
    scores = np.asarray(split.scores, dtype=np.float64)
    columns.update({f"{split.score_kind}_{name}": scores[:, i] for i, name in enumerate(label_names)})
    return pd.DataFrame(columns)


def write_predictions(path: Path, split: SplitPredictions, label_names: Sequence[str]) -> Path:
    """Parquet for a .parquet path, CSV for .csv."""
    frame = to_frame(split, label_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def save_run_predictions(output_dir: Path, splits: dict[str, SplitPredictions],
                         label_names: Sequence[str]) -> dict[str, str]:
    """predictions/<split>.parquet in the run directory; the record's `predictions` maps each split to its path,
    relative to the run directory so that results stay readable when the directory moves."""
    return {name: str(write_predictions(output_dir / PREDICTIONS_DIR / f"{name}.parquet", split, label_names)
                      .relative_to(output_dir))
            for name, split in splits.items()}
