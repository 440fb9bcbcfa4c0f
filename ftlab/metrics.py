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
        logits = eval_prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return classification_metrics(eval_prediction.label_ids, np.argmax(logits, axis=-1), num_labels)
    return compute
