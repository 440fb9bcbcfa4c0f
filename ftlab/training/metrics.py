"""Each task's metrics with scikit-learn and scipy (evaluate.load() fetches metric code from the hub at run time), and
what a model's outputs mean under each task (ftlab.tasks): a class and its probabilities (softmax), a label set
(sigmoid, each label's threshold tuned on validation or fixed), or a number (the target's scale restored)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import stats
from scipy.special import expit, softmax
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix, f1_score, hamming_loss,
                             mean_absolute_error, mean_squared_error, precision_recall_fscore_support, roc_auc_score)

from ftlab import tasks


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


def per_label(labels: np.ndarray, predictions: np.ndarray, names: Sequence[str],
              index: Optional[list[int]] = None) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (single-label) or label (multi-label)."""
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=index,
                                                                     average=None, zero_division=0)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for name, p, r, f, n in zip(names, precision, recall, f1, support)}


def single_label_metrics(labels: np.ndarray, predictions: np.ndarray, probabilities: Optional[np.ndarray],
                         names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, precision/recall/F1 (binary or macro, as before), macro-F1, the per-class report, and for two
    classes ROC-AUC and PR-AUC (average precision) of the second class's score, where both classes occur."""
    count = len(names)
    result: dict[str, Any] = {**classification_metrics(labels, predictions, count),
                              "macro_f1": float(f1_score(labels, predictions, average="macro",
                                                         labels=list(range(count)), zero_division=0)),
                              "per_class": per_label(labels, predictions, names, list(range(count)))}
    if count == 2 and probabilities is not None and len(np.unique(labels)) == 2:
        positive = np.asarray(probabilities)[:, 1]
        result["roc_auc"] = float(roc_auc_score(labels, positive))
        result["pr_auc"] = float(average_precision_score(labels, positive))
    return result


def samples_f1(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Each example's F1 of its predicted label set against its true set; 1 where both are empty (nothing to find,
    nothing claimed), which is scikit-learn's average="samples" with zero_division=1."""
    labels, predictions = np.asarray(labels, dtype=bool), np.asarray(predictions, dtype=bool)
    both = (labels & predictions).sum(axis=1)
    total = labels.sum(axis=1) + predictions.sum(axis=1)
    return np.where(total == 0, 1.0, 2.0 * both / np.maximum(total, 1))


def multi_label_metrics(labels: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray,
                        names: Sequence[str]) -> dict[str, Any]:
    """Example-based F1 (the primary: a mean of per-example scores), micro- and macro-F1, subset accuracy (the
    whole set right), Hamming loss, macro ROC-AUC over the labels with both outcomes in the split, the per-label
    report and the thresholds used."""
    labels = np.asarray(labels, dtype=int)
    predictions = (np.asarray(probabilities) >= thresholds).astype(int)
    scorable = [k for k in range(labels.shape[1]) if 0 < labels[:, k].sum() < len(labels)]
    result: dict[str, Any] = {
        "samples_f1": float(samples_f1(labels, predictions).mean()),
        "micro_f1": float(f1_score(labels, predictions, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(labels, predictions)),
        "hamming_loss": float(hamming_loss(labels, predictions)),
        "per_label": per_label(labels, predictions, names),
        "thresholds": {name: float(t) for name, t in zip(names, thresholds)},
    }
    if scorable:
        result["roc_auc"] = float(roc_auc_score(labels[:, scorable], np.asarray(probabilities)[:, scorable],
                                                average="macro"))
    return result


def tune_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per label, the probability threshold with the best F1 on these examples (validation): the midpoint between
    two neighbouring probabilities, over every cut; 0.5 for a label without a positive example (no cut gives it an
    F1 above 0). Ties go to the higher threshold (fewer false alarms)."""
    labels, probabilities = np.asarray(labels, dtype=bool), np.asarray(probabilities, dtype=float)
    thresholds = np.full(labels.shape[1], 0.5)
    for k in range(labels.shape[1]):
        truth = labels[:, k]
        if not truth.any():
            continue
        order = np.argsort(-probabilities[:, k], kind="stable")
        sorted_probs, sorted_truth = probabilities[order, k], truth[order]
        true_positives = np.cumsum(sorted_truth)  # predicting the top i+1 examples positive
        f1 = 2 * true_positives / (np.arange(1, len(order) + 1) + truth.sum())
        # A cut is only possible between distinct probabilities: keep the last index of each run of equals.
        distinct = np.r_[sorted_probs[1:] != sorted_probs[:-1], True]
        best = np.flatnonzero(distinct)[np.argmax(np.where(distinct, f1, -1)[distinct])]
        below = sorted_probs[best + 1] if best + 1 < len(order) else 0.0
        thresholds[k] = (sorted_probs[best] + below) / 2
    return thresholds


def regression_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    """MSE (the primary), MAE, and Pearson's and Spearman's correlation (NaN where either side is constant)."""
    labels, predictions = np.asarray(labels, dtype=float), np.asarray(predictions, dtype=float)
    constant = np.ptp(labels) == 0 or np.ptp(predictions) == 0
    return {"mse": float(mean_squared_error(labels, predictions)),
            "mae": float(mean_absolute_error(labels, predictions)),
            "pearson": float("nan") if constant else float(stats.pearsonr(labels, predictions)[0]),
            "spearman": float("nan") if constant else float(stats.spearmanr(labels, predictions)[0])}


@dataclass
class Scorer:
    """What a run's model outputs mean under its task, and the metrics of a split. `scaling`: a regression's
    (mean, sd) with --label_scaling (labels and outputs are mapped back before scoring); `threshold`: a
    multi-label run's fixed threshold (None: tuned on validation by `tune`)."""
    problem_type: str
    label_names: list[str]
    scaling: Optional[tuple[float, float]] = None
    threshold: Optional[float] = None
    thresholds: Optional[np.ndarray] = field(default=None, repr=False)

    def labels(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw)
        if self.problem_type == tasks.REGRESSION:
            return self.unscale(raw.reshape(-1))
        return raw.astype(int) if self.problem_type == tasks.MULTI_LABEL else raw

    def unscale(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        return values if self.scaling is None else values * self.scaling[1] + self.scaling[0]

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """(examples, columns): class probabilities, label probabilities, or the predicted number."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.problem_type == tasks.SINGLE_LABEL:
            return softmax(logits, axis=-1)
        if self.problem_type == tasks.MULTI_LABEL:
            return expit(logits)
        return self.unscale(logits.reshape(-1))[:, None]

    def tune(self, labels: np.ndarray, logits: np.ndarray) -> None:
        """Multi-label: the thresholds, per label on these (validation) examples, or the fixed one."""
        if self.problem_type != tasks.MULTI_LABEL:
            return
        if self.threshold is not None:
            self.thresholds = np.full(len(self.label_names), self.threshold)
        else:
            self.thresholds = tune_thresholds(self.labels(labels), self.scores(logits))

    def predictions(self, scores: np.ndarray) -> np.ndarray:
        if self.problem_type == tasks.SINGLE_LABEL:
            return scores.argmax(axis=-1)
        if self.problem_type == tasks.MULTI_LABEL:
            return (scores >= self._thresholds()).astype(int)
        return scores[:, 0]

    def _thresholds(self) -> np.ndarray:
        if self.thresholds is None:
            self.thresholds = np.full(len(self.label_names), 0.5 if self.threshold is None else self.threshold)
        return self.thresholds

    def metrics(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """A split's metrics (labels as `labels` gives them; scores as `scores` gives them)."""
        if self.problem_type == tasks.SINGLE_LABEL:
            return single_label_metrics(labels, self.predictions(scores), scores, self.label_names)
        if self.problem_type == tasks.MULTI_LABEL:
            return multi_label_metrics(labels, scores, self._thresholds(), self.label_names)
        return regression_metrics(labels, scores[:, 0])

    def split_record(self, labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
        """A split's entry in the run record: its metrics, the confusion matrix (single-label) and its size."""
        result = self.metrics(labels, scores)
        if self.problem_type == tasks.SINGLE_LABEL:
            result["confusion_matrix"] = confusion(labels, self.predictions(scores), len(self.label_names))
        result["num_samples"] = int(len(labels))
        return result

    def trainer_metrics(self) -> Callable[[Any], dict[str, float]]:
        """The Trainer's compute_metrics hook: the scalar metrics of each evaluation (multi-label: with thresholds
        tuned on that evaluation's examples, or the fixed one), so that every logger can take them."""
        def compute(eval_prediction: Any) -> dict[str, float]:
            logits = eval_prediction.predictions  # the logits alone (HarnessTrainer.prediction_step)
            self.tune(eval_prediction.label_ids, logits)
            result = self.metrics(self.labels(eval_prediction.label_ids), self.scores(logits))
            return {key: value for key, value in result.items() if isinstance(value, float)}
        return compute


def split_metrics(labels: np.ndarray, predictions: np.ndarray, num_labels: int) -> dict[str, Any]:
    """A single-label split's entry in the run record from predictions alone (no scores)."""
    return {**classification_metrics(labels, predictions, num_labels),
            "confusion_matrix": confusion(labels, predictions, num_labels), "num_samples": int(len(labels))}


def trainer_metrics(num_labels: int) -> Callable[[Any], dict[str, float]]:
    """The single-label compute_metrics hook on argmax predictions (what Scorer's gives for single-label runs,
    without the scores' metrics)."""
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
    problems: list[str] = []
    bad = [loss for loss in losses if not np.isfinite(loss)]
    if bad:
        problems.append(f"non-finite training loss ({len(bad)} of {len(losses)} logged values, e.g. {bad[0]})")
    for split, result in metrics.items():
        if not np.isfinite(result.get("loss", 0.0)):
            problems.append(f"non-finite {split} loss")
        if "confusion_matrix" not in result:  # multi-label and regression: no single class to collapse to
            continue
        matrix = np.asarray(result["confusion_matrix"])  # rows: true class, columns: predicted class
        predicted = np.flatnonzero(matrix.sum(axis=0))
        true_counts = matrix.sum(axis=1)
        if len(predicted) == 1 and true_counts.max() <= MAX_MAJORITY_SHARE_FOR_COLLAPSE * true_counts.sum():
            problems.append(f"single-class predictions on {split} (every sample -> {label_names[predicted[0]]!r}; "
                            f"true counts {dict(zip(label_names, true_counts.tolist()))})")
    return problems
