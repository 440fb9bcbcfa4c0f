"""Parity between a model and its export, on the same texts: how far the exported logits are from the reference
ones, how often the two agree on the label, both accuracies and the paired test between them (McNemar), and
whether that is drift beyond the tolerance.

The tolerance: an fp32 export computes what the model computes, up to float re-association (measured: below
1e-6 on the tiny test models, 1e-5 on MiniLM), so its labels must agree on at least 99% of the texts and its logits
be within 1e-3 (relative to the largest reference logit, where that exceeds 1): a lost pooling, a mis-traced
attention or a wrong tokenizer shows there even where it flips no label. A quantised export is allowed to move the
logits; for any export, an accuracy that is lower by a significant margin (exact McNemar, p < 0.05) is drift.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ftlab.analysis.stats import ALPHA, bootstrap_interval, mcnemar_exact

FP32_MIN_AGREEMENT = 0.99
FP32_LOGIT_TOLERANCE = 1e-3


def parity(reference: np.ndarray, exported: np.ndarray, labels: Optional[np.ndarray], precision: str) -> dict[str, Any]:
    """reference, exported: (texts, classes) logits of the same texts; labels: the true label ids (None for texts
    without labels: no accuracies then); precision: fp32, int8 or fp16. The result's `drift` lists each tolerance
    broken, in words (empty: within tolerance)."""
    reference, exported = np.asarray(reference, dtype=np.float64), np.asarray(exported, dtype=np.float64)
    reference_labels, exported_labels = reference.argmax(axis=1), exported.argmax(axis=1)
    largest_difference = float(np.abs(reference - exported).max()) if len(reference) else 0.0
    agreement = float(np.mean(reference_labels == exported_labels)) if len(reference) else 1.0
    result: dict[str, Any] = {"precision": precision, "texts": len(reference),
                              "max_abs_logit_difference": largest_difference, "label_agreement": agreement,
                              "disagreements": int(np.sum(reference_labels != exported_labels)),
                              "tolerance": _tolerance(precision, reference), "drift": []}
    if precision == "fp32":
        if agreement < FP32_MIN_AGREEMENT:
            result["drift"].append(f"labels agree on {agreement:.2%} of {len(reference):,} texts (fp32 needs "
                                   f"{FP32_MIN_AGREEMENT:.0%})")
        if largest_difference > result["tolerance"]["max_abs_logit_difference"]:
            result["drift"].append(f"largest |logit difference| {largest_difference:.2e} > "
                                   f"{result['tolerance']['max_abs_logit_difference']:.2e} (fp32)")
    if labels is not None and len(labels):
        labels = np.asarray(labels)
        correct_reference, correct_exported = reference_labels == labels, exported_labels == labels
        p = mcnemar_exact(correct_reference, correct_exported)
        result.update({"reference_accuracy": float(correct_reference.mean()),
                       "reference_interval": bootstrap_interval(correct_reference.astype(float)),
                       "exported_accuracy": float(correct_exported.mean()),
                       "exported_interval": bootstrap_interval(correct_exported.astype(float)),
                       "mcnemar_p": p})
        if result["exported_accuracy"] < result["reference_accuracy"] and p < ALPHA:
            result["drift"].append(f"accuracy {result['exported_accuracy']:.4f} against "
                                   f"{result['reference_accuracy']:.4f}: lower, McNemar p = {p:.3g} < {ALPHA}")
    return result


def _tolerance(precision: str, reference: np.ndarray) -> dict[str, Any]:
    tolerance: dict[str, Any] = {"accuracy_drop_alpha": ALPHA}
    if precision == "fp32":
        scale = max(1.0, float(np.abs(reference).max())) if len(reference) else 1.0
        tolerance.update(min_label_agreement=FP32_MIN_AGREEMENT, max_abs_logit_difference=FP32_LOGIT_TOLERANCE * scale)
    return tolerance


def summary_line(name: str, result: dict[str, Any]) -> str:
    """One line for the terminal: the export's parity, and its drift if any."""
    accuracy = (f"; accuracy {result['exported_accuracy']:.4f} vs {result['reference_accuracy']:.4f} "
                f"(McNemar p = {result['mcnemar_p']:.3g})" if "mcnemar_p" in result else "")
    verdict = "DRIFT: " + "; ".join(result["drift"]) if result["drift"] else "within tolerance"
    return (f"parity {name} on {result['texts']:,} texts: labels agree {result['label_agreement']:.2%}, largest "
            f"|logit difference| {result['max_abs_logit_difference']:.2e}{accuracy}: {verdict}")
