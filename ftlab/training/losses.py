"""The loss a run minimises where the model's own does not do: weighted classes (--class_weights).

Without weights the model computes its loss itself from `config.problem_type`, which the run sets to its task
(ftlab.models.load): cross-entropy (single-label), binary cross-entropy on each label's logit (multi-label), mean
squared error (regression); transformers' classifiers, encoders and decoders alike, all do that, so the lab adds no
second version of it. The model's loss takes no weights (transformers #35061), so weighted runs hand the Trainer
this function (its `compute_loss_func`), which then takes the labels out of the model's inputs.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from ftlab import tasks

LossFunction = Callable[[Any, torch.Tensor, Optional[int]], torch.Tensor]


def weighted_loss(problem_type: str, weights: Optional[Sequence[float]]) -> Optional[LossFunction]:
    """Cross-entropy with a weight per class (a weighted mean over the batch, as torch computes it), or binary
    cross-entropy with a positive weight per label; None without weights (the model's own loss)."""
    if weights is None:
        return None
    weight = torch.tensor(list(weights), dtype=torch.float32)

    def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Optional[int] = None) -> torch.Tensor:
        logits = (outputs["logits"] if isinstance(outputs, dict) else outputs[0]).float()
        if problem_type == tasks.SINGLE_LABEL:
            return F.cross_entropy(logits, labels, weight=weight.to(logits.device))
        return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weight.to(logits.device))

    return loss
