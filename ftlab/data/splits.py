"""From whatever a source gave us to three labelled splits with columns text/label: the same every time."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import datasets
import numpy as np

from ftlab.config.schema import MIN_EVAL_ROWS
from ftlab.data.sources import RawData
from ftlab.data.textfile import delimiter_hint
from ftlab.errors import DataError


@dataclass
class PreparedData:
    splits: datasets.DatasetDict  # train / validation / test, columns text + label (ClassLabel) + example_id
    label_names: list[str]
    origin: str
    notes: list[str] = field(default_factory=list)
    test_is_validation: bool = False

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}


def _select_columns(raw: RawData, dataset_name: str) -> datasets.DatasetDict:
    """text and label, plus `example_id`: the source split and row ("train/17"), given before anything is carved
    or subsampled, so that the same example has the same id in every run on the same data (paired tests match
    runs' predictions by it)."""
    out = {}
    for split_name, split in raw.splits.items():
        if split_name not in ("train", "validation", "test"):
            continue
        for role, column in (("text", raw.text_column), ("label", raw.label_column)):
            if column not in split.column_names:
                raise DataError(f"--dataset {dataset_name}: split {split_name!r} has no {role} column {column!r}; "
                                f"its columns are {', '.join(split.column_names)} "
                                f"(choose with --{role}_column){delimiter_hint(split.column_names)}")
        split = split.select_columns([raw.text_column, raw.label_column])
        if raw.text_column != "text":
            split = split.rename_column(raw.text_column, "text")
        if raw.label_column != "label":
            split = split.rename_column(raw.label_column, "label")
        out[split_name] = split.add_column("example_id", [f"{split_name}/{row}" for row in range(len(split))])
    return datasets.DatasetDict(out)


def _is_missing(label: Any) -> bool:
    return label is None or (isinstance(label, float) and math.isnan(label))


def _drop_missing_labels(splits: datasets.DatasetDict, notes: list[str],
                         dataset_name: str) -> datasets.DatasetDict:
    """Rows without a label (an empty cell: None, or NaN in a numeric column) cannot be trained or scored on."""
    out = {}
    for name, split in splits.items():
        # An unlabelled evaluation split is a hidden test set (GLUE); training needs labels.
        if isinstance(split.features["label"], datasets.ClassLabel) or (_is_unlabelled(split) and name != "train"):
            out[name] = split
            continue
        kept, _ = _keep_rows(split, "label", lambda label: not _is_missing(label),
                             f"rows without a label from the {name} split", notes)
        if len(kept) == 0:
            raise DataError(f"--dataset {dataset_name}: no row of the {name} split has a label")
        out[name] = kept
    return datasets.DatasetDict(out)


def _keep_rows(split: datasets.Dataset, column: str, keep: Callable[[Any], bool], what: str,
               notes: list[str]) -> tuple[datasets.Dataset, int]:
    """The rows whose `column` passes `keep`, and how many were dropped; a drop is printed and noted in the record."""
    kept = split.filter(lambda batch: [keep(value) for value in batch[column]], batched=True)
    dropped = len(split) - len(kept)
    if dropped:
        message = f"dropped {dropped} {what}"
        print(f"[ftlab] {message}", flush=True)
        notes.append(message)
    return kept, dropped


def _drop_empty_texts(splits: datasets.DatasetDict, notes: list[str], dataset_name: str) -> datasets.DatasetDict:
    out = {}
    for name, split in splits.items():
        if len(split) == 0:
            raise DataError(f"--dataset {dataset_name}: the {name} split is empty")
        kept, dropped = _keep_rows(split, "text", lambda text: text is not None and str(text).strip() != "",
                                   f"empty or missing texts from the {name} split", notes)
        if len(kept) == 0:
            raise DataError(f"split {name!r} has no non-empty texts left ({dropped} empty or missing)")
        out[name] = kept
    return datasets.DatasetDict(out)


def _is_unlabelled(split: datasets.Dataset) -> bool:
    # GLUE-style hidden test labels are stored as -1.
    labels = split["label"]
    return all(_is_missing(label) or label == -1 for label in labels)


def _label_value(label: Any) -> Any:
    """A label as a class: 1.0 and 1 are one class, named "1" (a numeric column with one empty cell is read as
    floats)."""
    return int(label) if isinstance(label, float) and label.is_integer() else label


def _encode_labels(splits: datasets.DatasetDict) -> tuple[datasets.DatasetDict, list[str]]:
    """One label mapping shared by all splits (per-split encoding would disagree when a split lacks a class)."""
    feature = splits["train"].features["label"]
    if isinstance(feature, datasets.ClassLabel):
        return splits, list(feature.names)
    values = sorted({_label_value(v) for split in splits.values() for v in split["label"]
                     if not _is_missing(v) and v != -1}, key=lambda v: (isinstance(v, str), v))
    names = [str(v) for v in values]
    index = {v: i for i, v in enumerate(values)}
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names),
                                  "example_id": datasets.Value("string")})

    def encode(batch: dict) -> dict:
        return {**batch, "label": [index.get(_label_value(v), -1) for v in batch["label"]]}

    encoded = {name: split.map(encode, batched=True, features=features) if not _is_unlabelled(split)
               else split for name, split in splits.items()}
    return datasets.DatasetDict(encoded), names


def _stratified_take(split: datasets.Dataset, n: Optional[int], seed: int) -> datasets.Dataset:
    if n is None or n >= len(split):
        return split
    try:
        return split.train_test_split(train_size=n, stratify_by_column="label", seed=seed)["train"]
    except ValueError:  # a class too rare to stratify at this size: fall back to a seeded shuffle
        return split.shuffle(seed=seed).select(range(n))


def nested_order(labels: Sequence[int], seed: int) -> np.ndarray:
    """Row indices in one seeded order whose every prefix is a stratified sample: within each class a seeded
    permutation, and the row of rank k in a class of m rows placed at its quantile (k + 0.5) / m, classes merged by
    that position (ties in class order). The first n rows then hold each class within one row of its share of n
    (two classes; in general within 0.5 + classes x share / 2), and the first n rows of the same labels and seed
    lie inside the first n' for every n' > n. scikit-learn's and datasets' stratified splits draw anew per size."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    rows, positions = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        rows.append(members)
        positions.append((np.arange(len(members)) + 0.5) / len(members))
    rows_all, positions_all = np.concatenate(rows), np.concatenate(positions)
    return rows_all[np.argsort(positions_all, kind="stable")]


def _nested_take(split: datasets.Dataset, n: Optional[int], seed: int) -> datasets.Dataset:
    """The first n rows of nested_order, kept in the split's own order (so the rows a run trains on, and hence its
    data order under a given training seed, depend on the set only)."""
    if n is None or n >= len(split):
        return split
    return split.select(np.sort(nested_order(split["label"], seed)[:n]))


def _carve(split: datasets.Dataset, count: int, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    try:
        parts = split.train_test_split(test_size=count, stratify_by_column="label", seed=seed)
    except ValueError:
        parts = split.train_test_split(test_size=count, seed=seed)
    return parts["train"], parts["test"]


def _carve_counts(rows: int, validation_fraction: Optional[float],
                  test_fraction: Optional[float]) -> tuple[int, int]:
    """Rows carved from train for validation and test, at least one each (0 where the fraction is None: that split
    exists already)."""
    return (max(1, round(validation_fraction * rows)) if validation_fraction is not None else 0,
            max(1, round(test_fraction * rows)) if test_fraction is not None else 0)


# Fewest training rows that still hold two classes.
MIN_TRAIN_ROWS = 2
# More classes than this and than half the rows: the label column is not a set of classes.
MANY_CLASSES = 20


def _enough(rows: int, validation_fraction: Optional[float], test_fraction: Optional[float]) -> bool:
    carved = _carve_counts(rows, validation_fraction, test_fraction)
    fractions = (validation_fraction, test_fraction)
    return rows - sum(carved) >= MIN_TRAIN_ROWS and all(
        count >= MIN_EVAL_ROWS for count, fraction in zip(carved, fractions) if fraction is not None)


def _check_enough_rows(rows: int, dataset_name: str, validation_fraction: Optional[float],
                       test_fraction: Optional[float]) -> None:
    """Carving needs rows left for training and enough in each carved split to score it; scikit-learn's own error
    ('test_size=1 should be ...') says nothing about the data, and a 1-row test split raises none."""
    if _enough(rows, validation_fraction, test_fraction):
        return
    needed = next((n for n in range(rows + 1, 10**5) if _enough(n, validation_fraction, test_fraction)), None)
    carving = " and ".join(name for name, fraction in (("validation", validation_fraction),
                                                       ("test", test_fraction)) if fraction is not None)
    need = f"at least {needed:,} rows" if needed else "smaller --validation_fraction/--test_fraction"
    raise DataError(f"--dataset {dataset_name}: {rows} training rows are too few to carve {carving} of at least "
                    f"{MIN_EVAL_ROWS} rows each from and keep {MIN_TRAIN_ROWS} to train on: it needs {need}")


def _check_scored_size(name: str, split: datasets.Dataset, dataset_name: str) -> None:
    # --max_eval_samples/--max_test_samples below the minimum are refused with the flags; this is a split that
    # came this small.
    if len(split) < MIN_EVAL_ROWS:
        raise DataError(f"--dataset {dataset_name}: the {name} split has {len(split)} rows; a split is scored on at "
                        f"least {MIN_EVAL_ROWS}")


def prepare_splits(raw: RawData, dataset_name: str, *, validation_fraction: float, test_fraction: float,
                   data_seed: int, max_train: Optional[int], max_eval: Optional[int],
                   max_test: Optional[int], train_subsample: str = "stratified") -> PreparedData:
    notes = list(raw.notes)
    if "train" not in raw.splits:
        raise DataError(f"--dataset {dataset_name}: no 'train' split (splits: {', '.join(raw.splits)})")
    splits = _drop_empty_texts(_select_columns(raw, dataset_name), notes, dataset_name)
    splits = _drop_missing_labels(splits, notes, dataset_name)
    splits, label_names = _encode_labels(splits)

    train = splits["train"]
    original_train_size = len(train)  # both fractions are of the original training split
    if len(label_names) > max(MANY_CLASSES, original_train_size // 2):
        raise DataError(f"--dataset {dataset_name}: {len(label_names)} distinct labels in {original_train_size} rows "
                        f"(e.g. {', '.join(label_names[:3])}): column {raw.label_column!r} looks like a number to "
                        f"predict or an id, not classes; choose the class column with --label_column")
    test_is_validation = False
    test = splits.get("test")
    if test is not None and _is_unlabelled(test):
        test = None
        test_is_validation = True
        notes.append("the test split has no labels: test figures are computed on the validation split")
    validation = splits.get("validation")
    carve_validation = validation_fraction if validation is None else None
    carve_test = test_fraction if test is None and not test_is_validation else None
    _check_enough_rows(original_train_size, dataset_name, carve_validation, carve_test)
    validation_rows, test_rows = _carve_counts(original_train_size, carve_validation, carve_test)
    if validation_rows:
        train, validation = _carve(train, validation_rows, data_seed)
        notes.append(f"validation carved from train ({validation_fraction:g}, stratified, seed {data_seed})")
    if test_rows:
        train, test = _carve(train, test_rows, data_seed)
        notes.append(f"test carved from train ({test_fraction:g}, stratified, seed {data_seed})")

    # Validation and test are carved and subsampled independently of max_train: the same at every training size.
    take_train = _nested_take if train_subsample == "nested" else _stratified_take
    train = take_train(train, max_train, data_seed)
    validation = _stratified_take(validation, max_eval, data_seed)
    test = validation if test_is_validation else _stratified_take(test, max_test, data_seed)

    for name, split in (("train", train), ("validation", validation), ("test", test)):
        if len(split) == 0:
            raise DataError(f"--dataset {dataset_name}: the {name} split is empty")
    _check_scored_size("validation", validation, dataset_name)
    _check_scored_size("test", test, dataset_name)
    train_classes = set(train.unique("label"))
    if len(train_classes) < 2:
        only = label_names[next(iter(train_classes))] if train_classes else "none"
        raise DataError(f"--dataset {dataset_name}: the training split has a single class ({only!r}); "
                        f"a classifier needs at least two")
    return PreparedData(datasets.DatasetDict({"train": train, "validation": validation, "test": test}),
                        label_names, raw.origin, notes, test_is_validation)
