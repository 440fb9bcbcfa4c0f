"""The one place that decides a run's task (ftlab.tasks) from --problem_type or the label column, and turns the
labels into what that task trains on: a class id (single-label), a multi-hot vector of floats (multi-label), or a
float (regression). A label column the decision cannot read (forms mixed, a label the training split never has, a
score that is not a finite number) is one error naming the row and the value, before the model loads.

Forms a label column can have, and the task each infers:
- a ClassLabel feature, text, booleans, or integers with few distinct values: single-label;
- lists (of names or class ids), lists of 0/1 of one length (multi-hot), several comma-separated label columns of
  0/1, a list-of-ClassLabel feature, or text with --label_separator: multi-label;
- numbers with a fraction, a float feature, or integers with more distinct values than classes have: regression.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import datasets
import numpy as np

from ftlab import tasks
from ftlab.errors import DataError

# More classes than this and than half the rows: integer labels are numbers to predict, not classes.
MANY_CLASSES = 20


@dataclass
class TaskDecision:
    """What a run is, and why: the record's `task`."""
    problem_type: str
    inferred: bool
    reason: str
    label_scaling: Optional[tuple[float, float]] = None  # regression with --label_scaling: (mean, sd) of train

    def as_record(self) -> dict[str, Any]:
        scaling = None if self.label_scaling is None else {"mean": self.label_scaling[0],
                                                            "std": self.label_scaling[1]}
        return {"problem_type": self.problem_type, "inferred": self.inferred, "reason": self.reason,
                "label_scaling": scaling}


def is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


def is_unlabelled(split: datasets.Dataset) -> bool:
    """GLUE-style hidden test labels are stored as -1 (or left empty)."""
    return all(is_missing(label) or (not isinstance(label, (list, str)) and label == -1)
               for label in column_values(split, "label"))


def keep_rows(split: datasets.Dataset, column: str, keep: Callable[[Any], bool], what: str,
              notes: list[str]) -> tuple[datasets.Dataset, int]:
    """The rows whose `column` passes `keep`, and how many were dropped; a drop is printed and noted in the record."""
    kept = split.filter(lambda batch: [keep(value) for value in batch[column]], batched=True)
    dropped = len(split) - len(kept)
    if dropped:
        message = f"dropped {dropped} {what}"
        print(f"[ftlab] {message}", flush=True)
        notes.append(message)
    return kept, dropped


def _form(value: Any) -> str:
    """A label's form: list, number (with a fraction), integer, text or missing."""
    if is_missing(value):
        return "missing"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, bool):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, (int, np.integer)):
        return "integer"
    if isinstance(value, str):
        return "number" if _as_number(value) is not None and not float(value).is_integer() else "text"
    return type(value).__name__


def _as_number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def column_values(split: datasets.Dataset, column: str) -> list:
    """A column as a list, read in one go. `split[column]` is a lazy datasets Column whose iteration formats one
    row at a time (about 45 µs a row: two passes over IMDB's 50,000 labels took 10 s of every run's start)."""
    return split.select_columns([column])[:][column]


def _rows(splits: datasets.DatasetDict):
    for name, split in splits.items():
        for index, (example_id, label) in enumerate(zip(column_values(split, "example_id"),
                                                        column_values(split, "label"))):
            yield name, index, example_id, label


def _check_one_form(splits: datasets.DatasetDict, column: str, dataset_name: str) -> str:
    """The labels' one form (integers and numbers with a fraction are one form: numbers); mixed forms are an
    error naming the first row of each."""
    first: dict[str, tuple[str, Any]] = {}
    for _, _, example_id, label in _rows(splits):
        form = _form(label)
        if form == "missing":
            continue
        form = "number" if form == "integer" else form
        first.setdefault(form, (example_id, label))
    if len(first) > 1:
        (form_a, (row_a, value_a)), (form_b, (row_b, value_b)) = list(first.items())[:2]
        raise DataError(f"--dataset {dataset_name}: label column {column!r} mixes forms: row {row_a} is "
                        f"{_article(form_a)} ({value_a!r}), row {row_b} is {_article(form_b)} ({value_b!r}); "
                        f"give every row the same form (one class, a list of labels, or a number)")
    return next(iter(first), "missing")


def _article(form: str) -> str:
    return {"list": "a list", "number": "a number", "text": "text", "integer": "an integer"}.get(form, f"a {form}")


def _is_multi_hot(values: list[Any]) -> bool:
    """Lists of 0s and 1s only, some of two or more: multi-hot vectors (a row of another length is then an error,
    not a set of the labels "0" and "1")."""
    return (any(len(value) >= 2 for value in values)
            and all(item in (0, 1) and not isinstance(item, (str, float)) for value in values for item in value))


def infer(splits: datasets.DatasetDict, label_separator: Optional[str], columns: list[str],
          dataset_name: str, typed: bool = False) -> tuple[str, str]:
    """(problem type, reason in words) from the label column's feature and values. `typed`: the features were
    chosen by the dataset's author (hub, save_to_disk), so a float feature is a regression whatever its values; a
    file reader's float column may be integers with an empty cell."""
    column = ",".join(columns)
    feature = splits["train"].features["label"]
    if len(columns) > 1:
        return tasks.MULTI_LABEL, f"{len(columns)} label columns ({column})"
    if isinstance(feature, datasets.ClassLabel):
        return tasks.SINGLE_LABEL, f"column {column!r} is a ClassLabel"
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return tasks.MULTI_LABEL, f"column {column!r} holds lists of a ClassLabel"
    if label_separator is not None:
        return tasks.MULTI_LABEL, f"--label_separator {label_separator!r}"
    form = _check_one_form(splits, column, dataset_name)
    if form == "list":
        values = [v for v in column_values(splits["train"], "label") if not is_missing(v)]
        return tasks.MULTI_LABEL, f"column {column!r} holds {'multi-hot vectors' if _is_multi_hot(values) else 'lists'}"
    if typed and isinstance(feature, datasets.Value) and feature.dtype.startswith("float"):
        return tasks.REGRESSION, f"column {column!r} is a {feature.dtype} feature"
    if form == "number":
        distinct = {float(v) for v in column_values(splits["train"], "label") if not is_missing(v) and v != -1}
        if any(not v.is_integer() for v in distinct):
            return tasks.REGRESSION, f"column {column!r} holds numbers with fractions"
        rows = len(splits["train"])
        if len(distinct) > max(MANY_CLASSES, rows // 2):
            return tasks.REGRESSION, f"column {column!r} holds {len(distinct)} distinct integers in {rows} rows"
        return tasks.SINGLE_LABEL, f"column {column!r} holds {len(distinct)} class ids"
    return tasks.SINGLE_LABEL, f"column {column!r} holds class names"


def encode(splits: datasets.DatasetDict, problem_type: str, label_separator: Optional[str], columns: list[str],
           dataset_name: str, notes: list[str]) -> tuple[datasets.DatasetDict, list[str]]:
    """The splits with `label` as the task trains on it, and the label names (regression: the column's name)."""
    if problem_type == tasks.SINGLE_LABEL:
        _refuse_lists(splits, ",".join(columns), dataset_name)
        splits, names = _encode_classes(_drop_missing(splits, notes, dataset_name), dataset_name)
        rows = len(splits["train"])
        if len(names) > max(MANY_CLASSES, rows // 2):
            raise DataError(f"--dataset {dataset_name}: {len(names)} distinct labels in {rows} rows (e.g. "
                            f"{', '.join(names[:3])}): column {','.join(columns)!r} looks like an id, not classes; "
                            f"choose the class column with --label_column (or --problem_type regression for "
                            f"numbers to predict)")
        return splits, names
    if problem_type == tasks.MULTI_LABEL:
        return _encode_label_sets(_drop_missing(splits, notes, dataset_name), label_separator, columns, dataset_name)
    return _encode_scores(splits, ",".join(columns), dataset_name), [",".join(columns)]


def _refuse_lists(splits: datasets.DatasetDict, column: str, dataset_name: str) -> None:
    for _, _, example_id, label in _rows(splits):
        if isinstance(label, (list, tuple)):
            raise DataError(f"--dataset {dataset_name}: row {example_id} of column {column!r} is a list "
                            f"({label!r}); a single-label run needs one class per row (--problem_type multi_label "
                            f"for sets of labels)")


def _drop_missing(splits: datasets.DatasetDict, notes: list[str], dataset_name: str) -> datasets.DatasetDict:
    """Rows without a label (an empty cell: None, or NaN in a numeric column) cannot be trained or scored on."""
    out = {}
    for name, split in splits.items():
        # An unlabelled evaluation split is a hidden test set (GLUE); training needs labels.
        if isinstance(split.features["label"], datasets.ClassLabel) or (is_unlabelled(split) and name != "train"):
            out[name] = split
            continue
        kept, _ = keep_rows(split, "label", lambda label: not is_missing(label),
                            f"rows without a label from the {name} split", notes)
        if len(kept) == 0:
            raise DataError(f"--dataset {dataset_name}: no row of the {name} split has a label")
        out[name] = kept
    return datasets.DatasetDict(out)


def _class_value(label: Any) -> Any:
    """A label as a class: 1.0 and 1 are one class, named "1" (a numeric column with one empty cell is read as
    floats)."""
    return int(label) if isinstance(label, float) and label.is_integer() else label


def _features(split: datasets.Dataset, label: Any) -> datasets.Features:
    return datasets.Features({**{name: feature for name, feature in split.features.items()}, "label": label})


def _encode_classes(splits: datasets.DatasetDict, dataset_name: str) -> tuple[datasets.DatasetDict, list[str]]:
    """One label mapping shared by all splits (per-split encoding would disagree when a split lacks a class)."""
    feature = splits["train"].features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return splits, list(feature.names)
    values = sorted({_class_value(v) for split in splits.values() for v in column_values(split, "label")
                     if not is_missing(v) and v != -1}, key=lambda v: (isinstance(v, str), v))
    names = [str(v) for v in values]
    index = {v: i for i, v in enumerate(values)}

    def encode(batch: dict) -> dict:
        return {**batch, "label": [index.get(_class_value(v), -1) for v in batch["label"]]}

    encoded = {name: split.map(encode, batched=True, features=_features(split, datasets.ClassLabel(names=names)))
               if not is_unlabelled(split) else split for name, split in splits.items()}
    return datasets.DatasetDict(encoded), names


def _label_set(value: Any, separator: Optional[str], names: Optional[list[str]]) -> list[Any]:
    """The labels of one row: a list (of names, or of ids into `names`), a multi-hot vector, a separated text, or a
    single label (a set of one)."""
    if isinstance(value, (list, tuple)):
        if names is not None and all(isinstance(item, (int, np.integer)) for item in value):
            return [names[item] if 0 <= item < len(names) else item for item in value]
        return [_class_value(item) for item in value]
    if isinstance(value, str) and separator is not None:
        return [part.strip() for part in value.split(separator) if part.strip()]
    return [_class_value(value)]


def _encode_label_sets(splits: datasets.DatasetDict, separator: Optional[str], columns: list[str],
                       dataset_name: str) -> tuple[datasets.DatasetDict, list[str]]:
    """Multi-hot float vectors over the label names the training split has; a label that only other splits have
    is an error (the model could never learn it, and its scores would be chance)."""
    column = ",".join(columns)
    feature = splits["train"].features["label"]
    inner = getattr(feature, "feature", None)
    names: Optional[list[str]] = list(inner.names) if isinstance(inner, datasets.ClassLabel) else None
    if len(columns) > 1:
        names = list(columns)
    train_values = [v for v in column_values(splits["train"], "label") if not is_missing(v)]
    multi_hot = names is None and _is_multi_hot(train_values)
    if multi_hot or len(columns) > 1:
        lengths = [len(value) for value in train_values]
        width = len(columns) if len(columns) > 1 else max(set(lengths), key=lengths.count)
        names = names or [str(i) for i in range(width)]
        for _, _, example_id, value in _rows(splits):
            if is_missing(value):
                continue
            if not isinstance(value, (list, tuple)) or len(value) != width or any(v not in (0, 1) for v in value):
                raise DataError(f"--dataset {dataset_name}: row {example_id} of {column!r} is {value!r}; the "
                                f"multi-hot rows have {width} values of 0 or 1")
        vectors = {name: [[float(v) for v in value] for value in column_values(split, "label")]
                   for name, split in splits.items()}
    else:
        seen = sorted({str(label) for value in train_values
                       for label in _label_set(value, separator, names)}, key=str)
        order = names if names is not None else seen
        known = set(seen) if names is None else set(names)
        index = {name: i for i, name in enumerate(order)}
        vectors = {}
        for split_name, split in splits.items():
            rows = []
            for example_id, value in zip(column_values(split, "example_id"), column_values(split, "label")):
                labels = [str(label) for label in _label_set(value, separator, names)]
                unknown = [label for label in labels if label not in known]
                if unknown:
                    where = "the training split never has it" if names is None else "not a label of the dataset"
                    raise DataError(f"--dataset {dataset_name}: row {example_id} has the label {unknown[0]!r}, "
                                    f"{where} (labels: {', '.join(order[:8])}{', ...' if len(order) > 8 else ''})")
                vector = [0.0] * len(order)
                for label in labels:
                    vector[index[label]] = 1.0
                rows.append(vector)
            vectors[split_name] = rows
        names = list(order)
    if len(names) < 2:
        raise DataError(f"--dataset {dataset_name}: column {column!r} has one label ({names[0] if names else 'none'!r}); "
                        f"a multi-label run needs at least two")
    label_feature = datasets.Sequence(datasets.Value("float32"), length=len(names))
    encoded = {name: split.remove_columns("label").add_column("label", vectors[name])
               .cast_column("label", label_feature) for name, split in splits.items()}
    return datasets.DatasetDict(encoded), names


def _encode_scores(splits: datasets.DatasetDict, column: str, dataset_name: str) -> datasets.DatasetDict:
    """Floats; a score that is missing, not a number, NaN or infinite is an error naming its row: a regression
    cannot drop a row silently the way an empty class cell is dropped, since an empty score is often a failed
    annotation that the user should see."""
    out = {}
    for name, split in splits.items():
        if name != "train" and is_unlabelled(split):
            out[name] = split
            continue
        scores = []
        for example_id, value in zip(column_values(split, "example_id"), column_values(split, "label")):
            number = _as_number(value) if isinstance(value, str) else value
            if isinstance(number, bool) or not isinstance(number, (int, float, np.number)) \
                    or not math.isfinite(float(number)):
                raise DataError(f"--dataset {dataset_name}: row {example_id} has the score {value!r} in column "
                                f"{column!r}; a regression needs a finite number in every row")
            scores.append(float(number))
        out[name] = split.remove_columns("label").add_column("label", scores).cast_column(
            "label", datasets.Value("float32"))
    return datasets.DatasetDict(out)


def scale_targets(splits: datasets.DatasetDict, dataset_name: str) -> tuple[datasets.DatasetDict,
                                                                               tuple[float, float]]:
    """Standardise a regression's targets with the training split's mean and sd (population sd): the same shift and
    scale for every split, undone on every prediction (ftlab.training.task_metrics) and by predict."""
    train = np.asarray(column_values(splits["train"], "label"), dtype=np.float64)
    mean, std = float(train.mean()), float(train.std())
    if std == 0:
        raise DataError(f"--dataset {dataset_name}: every training target is {mean:g}; --label_scaling needs them "
                        f"to vary (and so does a regression)")

    def scale(batch: dict) -> dict:
        return {"label": [(value - mean) / std for value in batch["label"]]}

    return datasets.DatasetDict({name: split.map(scale, batched=True) for name, split in splits.items()}), (mean, std)


def check_trainable(train: datasets.Dataset, problem_type: str, label_names: list[str], dataset_name: str,
                    notes: list[str]) -> None:
    """The training split as drawn can teach the task: two classes, some positive label, targets that vary."""
    if problem_type == tasks.SINGLE_LABEL:
        classes = set(train.unique("label"))
        if len(classes) < 2:
            only = label_names[next(iter(classes))] if classes else "none"
            raise DataError(f"--dataset {dataset_name}: the training split has a single class ({only!r}); "
                            f"a classifier needs at least two")
    elif problem_type == tasks.MULTI_LABEL:
        counts = np.asarray(column_values(train, "label"), dtype=np.float64).sum(axis=0)
        if not counts.any():
            raise DataError(f"--dataset {dataset_name}: no training row has any label")
        absent = [name for name, count in zip(label_names, counts) if count == 0]
        if absent:
            notes.append(f"labels without a training example (never predicted unless --threshold allows): "
                         f"{', '.join(absent)}")
    elif len(set(column_values(train, "label"))) < 2:
        raise DataError(f"--dataset {dataset_name}: every training target is {train['label'][0]:g}; a regression "
                        f"needs targets that vary")


def class_weight_values(spec: str, train: datasets.Dataset, problem_type: str, label_names: list[str],
                        dataset_name: str) -> Optional[list[float]]:
    """--class_weights as numbers in label order: single-label, the loss weight of each class (balanced: n /
    (classes x count), scikit-learn's `compute_class_weight`); multi-label, the positive weight of each label
    (balanced: negatives / positives of the label). None for none."""
    if spec == "none":
        return None
    count = len(label_names)
    if spec != "balanced":
        weights = [float(w) for w in spec.split(",")]
        if len(weights) != count:
            raise DataError(f"--class_weights {spec}: {len(weights)} weights for {count} "
                            f"{'classes' if problem_type == tasks.SINGLE_LABEL else 'labels'} "
                            f"({', '.join(label_names[:8])}{', ...' if count > 8 else ''}) of --dataset {dataset_name}")
        return weights
    if problem_type == tasks.SINGLE_LABEL:
        from sklearn.utils.class_weight import compute_class_weight

        labels = np.asarray(column_values(train, "label"))
        present = np.unique(labels)
        weights = np.ones(count)
        weights[present] = compute_class_weight("balanced", classes=present, y=labels)
        return weights.tolist()
    vectors = np.asarray(column_values(train, "label"), dtype=np.float64)
    positives = vectors.sum(axis=0)
    return [float((len(vectors) - p) / p) if p else 1.0 for p in positives]
