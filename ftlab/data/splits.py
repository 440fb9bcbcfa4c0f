"""From whatever a source gave us to three labelled splits with columns text/label: the same every time."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import datasets
import numpy as np

from ftlab import tasks
from ftlab.config.schema import MIN_EVAL_ROWS
from ftlab.data.labels import (TaskDecision, check_trainable, column_values, encode, infer, is_unlabelled, keep_rows,
                               scale_targets)
from ftlab.data.sources import RawData
from ftlab.data.textfile import delimiter_hint
from ftlab.errors import DataError


@dataclass
class PreparedData:
    splits: datasets.DatasetDict  # train / validation / test: text (+ text_pair), label as the task has it, example_id
    label_names: list[str]  # classes, labels (multi-label), or the target's column name (regression)
    origin: str
    notes: list[str] = field(default_factory=list)
    test_is_validation: bool = False
    task: TaskDecision = field(default_factory=lambda: TaskDecision(tasks.SINGLE_LABEL, True, "classes"))
    class_weights: Optional[list[float]] = None  # --class_weights in label order (ftlab.data.labels)

    @property
    def num_labels(self) -> int:
        """The head's outputs: one per class or label, one for a regression's target."""
        return len(self.label_names)

    @property
    def problem_type(self) -> str:
        return self.task.problem_type

    @property
    def has_pairs(self) -> bool:
        return "text_pair" in self.splits["train"].column_names

    def sizes(self) -> dict[str, int]:
        return {name: len(split) for name, split in self.splits.items()}


def _select_columns(raw: RawData, dataset_name: str) -> datasets.DatasetDict:
    """text (and text_pair) and label, plus `example_id`: the source split and row ("train/17"), given before
    anything is carved or subsampled, so that the same example has the same id in every run on the same data
    (paired tests match runs' predictions by it). Several label columns become one column of 0/1 lists."""
    out = {}
    label_columns = raw.label_columns
    for split_name, split in raw.splits.items():
        if split_name not in ("train", "validation", "test"):
            continue
        wanted = [("text", raw.text_column), *([("text_pair", raw.text_pair_column)] if raw.text_pair_column else []),
                  *(("label", column) for column in label_columns)]
        for role, column in wanted:
            if column not in split.column_names:
                flag = {"text_pair": "--text_pair_column"}.get(role, f"--{role}_column")
                raise DataError(f"--dataset {dataset_name}: split {split_name!r} has no {role.replace('_', ' ')} "
                                f"column {column!r}; its columns are {', '.join(split.column_names)} "
                                f"(choose with {flag}){delimiter_hint(split.column_names)}")
        if len(label_columns) > 1:
            vectors = [list(row) for row in zip(*(split[column] for column in label_columns))]
            split = split.select_columns([column for _, column in wanted[:-len(label_columns)]])
            split = split.add_column("label", vectors)
        else:
            split = split.select_columns([column for _, column in wanted])
            if label_columns[0] != "label":
                split = split.rename_column(label_columns[0], "label")
        for role, column in wanted[:2]:
            if role != "label" and column != role:
                split = split.rename_column(column, role)
        out[split_name] = split.add_column("example_id", [f"{split_name}/{row}" for row in range(len(split))])
    return datasets.DatasetDict(out)


def _drop_empty_texts(splits: datasets.DatasetDict, notes: list[str], dataset_name: str) -> datasets.DatasetDict:
    out = {}
    for name, split in splits.items():
        if len(split) == 0:
            raise DataError(f"--dataset {dataset_name}: the {name} split is empty")
        for column in [c for c in ("text", "text_pair") if c in split.column_names]:
            split, dropped = keep_rows(split, column, lambda text: text is not None and str(text).strip() != "",
                                       f"empty or missing {column.replace('_', ' ')}s from the {name} split", notes)
            if len(split) == 0:
                raise DataError(f"split {name!r} has no non-empty {column.replace('_', ' ')}s left ({dropped} empty "
                                f"or missing)")
        out[name] = split
    return datasets.DatasetDict(out)


def _stratified(split: datasets.Dataset) -> bool:
    """Whether rows are drawn per class: a single-label split's are; multi-label and regression draw at random."""
    return isinstance(split.features["label"], datasets.ClassLabel)


def _stratified_take(split: datasets.Dataset, n: Optional[int], seed: int) -> datasets.Dataset:
    if n is None or n >= len(split):
        return split
    if not _stratified(split):
        return split.shuffle(seed=seed).select(range(n))
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
    strata = column_values(split, "label") if _stratified(split) else np.zeros(len(split), dtype=int)
    return split.select(np.sort(nested_order(strata, seed)[:n]))


def _carve(split: datasets.Dataset, count: int, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    try:
        if not _stratified(split):
            raise ValueError("not stratified")
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
                   max_test: Optional[int], train_subsample: str = "stratified", problem_type: Optional[str] = None,
                   label_separator: Optional[str] = None, label_scaling: bool = False) -> PreparedData:
    """The three splits of a run. `problem_type` None: the label column decides it (ftlab.data.labels.infer)."""
    notes = list(raw.notes)
    if "train" not in raw.splits:
        raise DataError(f"--dataset {dataset_name}: no 'train' split (splits: {', '.join(raw.splits)})")
    splits = _drop_empty_texts(_select_columns(raw, dataset_name), notes, dataset_name)
    test_is_validation = "test" in splits and is_unlabelled(splits["test"])
    if test_is_validation:
        splits = datasets.DatasetDict({name: split for name, split in splits.items() if name != "test"})
        notes.append("the test split has no labels: test figures are computed on the validation split")
    if problem_type is None:
        problem_type, reason = infer(splits, label_separator, raw.label_columns, dataset_name, raw.typed)
        decision = TaskDecision(problem_type, True, reason)
    else:
        decision = TaskDecision(problem_type, False, "--problem_type")
    splits, label_names = encode(splits, problem_type, label_separator, raw.label_columns, dataset_name, notes)

    train = splits["train"]
    original_train_size = len(train)  # both fractions are of the original training split
    test = splits.get("test")
    validation = splits.get("validation")
    carve_validation = validation_fraction if validation is None else None
    carve_test = test_fraction if test is None and not test_is_validation else None
    _check_enough_rows(original_train_size, dataset_name, carve_validation, carve_test)
    validation_rows, test_rows = _carve_counts(original_train_size, carve_validation, carve_test)
    how = "stratified" if _stratified(train) else "at random"
    if validation_rows:
        train, validation = _carve(train, validation_rows, data_seed)
        notes.append(f"validation carved from train ({validation_fraction:g}, {how}, seed {data_seed})")
    if test_rows:
        train, test = _carve(train, test_rows, data_seed)
        notes.append(f"test carved from train ({test_fraction:g}, {how}, seed {data_seed})")

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
    check_trainable(train, problem_type, label_names, dataset_name, notes)
    splits = datasets.DatasetDict({"train": train, "validation": validation, "test": test})
    if label_scaling and problem_type == tasks.REGRESSION:
        splits, decision.label_scaling = scale_targets(splits, dataset_name)
    return PreparedData(splits, label_names, raw.origin, notes, test_is_validation, decision)
