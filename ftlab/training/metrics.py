"""Classification metrics with scikit-learn (evaluate.load() fetches metric code from the hub at run time)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy plus precision/recall/F1: binary (positive class 1) for two classes, macro-averaged otherwise."""
    average = "binary" if num_labels == 2 else "macro"
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, average=average,
                                                               labels=list(range(num_labels)) if average == "macro"
                                                               else None, zero_division=0)
    return {"accuracy": float(accuracy_score(labels, predictions)), "precision": float(precision),
            "recall": float(recall), "f1": float(f1)}


def confusion(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> list[list[int]]:
    return confusion_matrix(labels, predictions, labels=list(range(num_labels))).tolist()


def split_metrics(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> dict[str, Any]:
    """A split's entry in the run record: the scalar metrics, the confusion matrix and the split's size."""
    return {**classification_metrics(labels, predictions, num_labels),
            "confusion_matrix": confusion(labels, predictions, num_labels), "num_samples": int(len(labels))}


def trainer_metrics(num_labels: int) -> Callable[[Any], dict[str, float]]:
    """The Trainer's compute_metrics hook (scalars only, so every logger can take them)."""
    def compute(eval_prediction: Any) -> dict[str, float]:
        # The logits alone: HarnessTrainer.prediction_step drops the other outputs of encoder-decoders.
        return classification_metrics(eval_prediction.label_ids, np.argmax(eval_prediction.predictions, axis=-1),
                                      num_labels)
    return compute


# A constant predictor is only a failure when the true labels are mixed; on a split where one class holds more
# than this share, predicting it everywhere can be a (poor) legitimate model.
MAX_MAJORITY_SHARE_FOR_COLLAPSE = 0.75


def find_collapse(losses: list[float], metrics: dict[str, dict[str, Any]], label_names: list[str]) -> list[str]:
    """Why this run should not be trusted, in words: non-finite losses, or one class predicted for everything.

    One seed project reported OneCycle at 50.06% accuracy on balanced IMDB without noticing that its model had
    collapsed to a single class; this makes that visible in the record and the summary.
    """
    problems = []
    bad = [loss for loss in losses if not np.isfinite(loss)]
    if bad:
        problems.append(f"non-finite training loss ({len(bad)} of {len(losses)} logged values, e.g. {bad[0]})")
    for split, result in metrics.items():
        if not np.isfinite(result.get("loss", 0.0)):
            problems.append(f"non-finite {split} loss")
        matrix = np.asarray(result["confusion_matrix"])  # rows: true class, columns: predicted class
        predicted = np.flatnonzero(matrix.sum(axis=0))
        true_counts = matrix.sum(axis=1)
        if len(predicted) == 1 and true_counts.max() <= MAX_MAJORITY_SHARE_FOR_COLLAPSE * true_counts.sum():
            problems.append(f"single-class predictions on {split} (every sample -> {label_names[predicted[0]]!r}; "
                            f"true counts {dict(zip(label_names, true_counts.tolist()))})")
    return problems
