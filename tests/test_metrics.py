"""Metric values on fixed predictions, against fractions worked out by hand from the confusion counts. The labels
are imbalanced, so that binary, macro, weighted and micro averaging all give different numbers."""
import warnings

import numpy as np
import pytest
from transformers import EvalPrediction

from ftlab.training.metrics import classification_metrics, confusion, split_metrics, trainer_metrics

# Binary: 6 positives (class 1) and 14 negatives; 4 true positives, 2 false negatives, 3 false positives,
# 11 true negatives.
BINARY_LABELS = np.array([1] * 6 + [0] * 14)
BINARY_PREDICTIONS = np.array([1, 1, 1, 1, 0, 0] + [1, 1, 1] + [0] * 11)

# Three classes with 10 / 5 / 3 examples; rows: true class, columns: predicted class.
MATRIX = [[8, 1, 1],
          [2, 3, 0],
          [1, 1, 1]]


def _three_class_arrays() -> tuple[np.ndarray, np.ndarray]:
    labels, predictions = [], []
    for true, row in enumerate(MATRIX):
        for predicted, count in enumerate(row):
            labels += [true] * count
            predictions += [predicted] * count
    return np.array(labels), np.array(predictions)


def test_binary_precision_recall_f1_are_the_positive_class_s():
    metrics = classification_metrics(BINARY_LABELS, BINARY_PREDICTIONS, 2)
    # Positive class: precision 4/7, recall 4/6, F1 2*4/(7+6). (Class 0's would be 11/13, 11/14, 22/27; their
    # macro mean F1 0.7151, the weighted one 0.7550, micro 0.75.)
    assert metrics == pytest.approx({"accuracy": 15 / 20, "precision": 4 / 7, "recall": 4 / 6, "f1": 8 / 13},
                                    rel=1e-12)


def test_three_classes_are_macro_averaged():
    labels, predictions = _three_class_arrays()
    metrics = split_metrics(labels, predictions, 3)
    assert metrics["confusion_matrix"] == MATRIX and metrics["num_samples"] == 18
    # Per class (precision, recall, F1 = 2 tp / (predicted + true)): 8/11, 8/10, 16/21; 3/5, 3/5, 6/10; 1/2, 1/3,
    # 2/5. Macro: the plain mean over the three classes. (Weighted by support the F1 would be 0.6566, micro 0.6667.)
    expected = {"accuracy": 12 / 18, "precision": (8 / 11 + 3 / 5 + 1 / 2) / 3, "recall": (8 / 10 + 3 / 5 + 1 / 3) / 3,
                "f1": (16 / 21 + 6 / 10 + 2 / 5) / 3}
    assert {key: metrics[key] for key in expected} == pytest.approx(expected, rel=1e-12)


def test_the_macro_mean_is_over_every_class_of_the_label_set():
    # Class 2 is in the labels but never predicted: its precision, recall and F1 are 0 and still count.
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 0, 1, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its 0/0 precision is 0 by choice: no UndefinedMetricWarning in the log
        metrics = classification_metrics(labels, predictions, 3)
    assert metrics == pytest.approx({"accuracy": 4 / 6, "precision": (2 / 3 + 2 / 3 + 0) / 3,
                                     "recall": (1 + 1 + 0) / 3, "f1": (0.8 + 0.8 + 0) / 3}, rel=1e-12)
    # A split without any example of class 2 (none true, none predicted) still averages over the 3 classes of
    # the run, class 2 scoring 0: scores stay comparable across splits and runs of one label set.
    # Class 0: P 1, R 1/2, F1 2/3; class 1: P 2/3, R 1, F1 4/5.
    metrics = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    assert metrics == pytest.approx({"accuracy": 3 / 4, "precision": (1 + 2 / 3) / 3, "recall": (1 / 2 + 1) / 3,
                                     "f1": (2 / 3 + 4 / 5) / 3}, rel=1e-12)


def test_the_trainer_hook_scores_the_argmax_of_the_logits():
    labels, predictions = _three_class_arrays()
    logits = np.full((len(labels), 3), -1.0)
    logits[np.arange(len(labels)), predictions] = 2.0
    scored = trainer_metrics(3)(EvalPrediction(predictions=logits, label_ids=labels))
    assert scored == pytest.approx(classification_metrics(labels, predictions, 3), rel=1e-12)
    assert scored["f1"] == pytest.approx((16 / 21 + 6 / 10 + 2 / 5) / 3, rel=1e-12)


def test_the_confusion_matrix_has_a_row_and_column_for_every_class_of_the_run():
    # A split where class 2 neither occurs nor is predicted still gets its (empty) row and column, so that
    # matrices line up across splits and runs.
    assert confusion(np.array([0, 0, 1]), np.array([0, 1, 1]), 3) == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
