"""Texts to logits with a saved model, a torch one (ftlab.models.inference) or an exported graph
(ftlab.models.onnx.OnnxClassifier), each text cut as the model's run cut it: one loop for predict, the export's
parity check and the inference benchmark, so that the backends they compare see the same tokens."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

if TYPE_CHECKING:
    import numpy as np
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ftlab.models.onnx import OnnxClassifier


def _batches(tokenizer: PreTrainedTokenizerBase, config: Any, texts: Sequence[Any], batch_size: int,
             max_length: Optional[int], truncation: Optional[str], tensors: str) -> Iterator[Any]:
    """Tokenised batches: the run's saved truncation and max length (head and DEFAULT_MAX_LENGTH tokens when it
    saved none) unless `max_length` / `truncation` say otherwise; each batch padded to its own longest text. A
    (text, second text) pair is encoded with the tokenizer's pair template, the budget shared."""
    from ftlab.data.pairs import encode_pairs
    from ftlab.data.truncation import encode, saved_truncation
    from ftlab.models.inference import DEFAULT_MAX_LENGTH

    saved_strategy, saved_length = saved_truncation(config)
    cut = {"max_length": max_length or saved_length or DEFAULT_MAX_LENGTH, "truncation": truncation or saved_strategy,
           "padding": True, "return_tensors": tensors}
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        if batch and isinstance(batch[0], tuple):
            yield encode_pairs(tokenizer, [a for a, _ in batch], [b for _, b in batch], **cut)
        else:
            yield encode(tokenizer, batch, **cut)


def logits(model: Union[PreTrainedModel, OnnxClassifier], tokenizer: Optional[PreTrainedTokenizerBase],
           texts: Sequence[str], *, batch_size: int = 32, max_length: Optional[int] = None,
           truncation: Optional[str] = None) -> np.ndarray:
    """(texts, labels) float32 logits of a torch classifier (with its `tokenizer`) or of an exported graph (its
    own tokenizer; pass None)."""
    import numpy as np

    from ftlab.models.onnx import OnnxClassifier

    if isinstance(model, OnnxClassifier):
        out = [model.run(batch) for batch in _batches(model.tokenizer, model.config, texts, batch_size, max_length,
                                                       truncation, "np")]
        return np.concatenate(out) if out else np.zeros((0, len(model.config.id2label)), dtype=np.float32)
    import torch

    model.eval()  # dropout off: the same text always gets the same answer
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for batch in _batches(tokenizer, model.config, texts, batch_size, max_length, truncation, "pt"):
            out.append(model(**{key: value.to(device) for key, value in batch.items()}).logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels), dtype=np.float32)


def label_records(scores: np.ndarray, texts: Sequence[Any], config: Any) -> list[dict[str, Any]]:
    """One record per text (a pair shown as "text | second text"), as the model's task has it (its config's
    problem_type): single-label {"text", "label" (name), "label_id", "probabilities": {name: p}} (softmax);
    multi-label {"text", "labels" (the names at or above their thresholds, tuned on validation by the run),
    "probabilities"} (sigmoid); regression {"text", "score"} on the targets' scale."""
    import numpy as np
    from scipy.special import expit, softmax

    from ftlab import tasks
    from ftlab.data.truncation import LABEL_SCALING_KEY, THRESHOLDS_KEY

    id2label = {int(i): name for i, name in config.id2label.items()}
    problem_type = getattr(config, "problem_type", None) or tasks.SINGLE_LABEL
    scores = np.asarray(scores, dtype=np.float64)
    shown = [" | ".join(text) if isinstance(text, tuple) else text for text in texts]
    if problem_type == tasks.REGRESSION:
        mean, std = getattr(config, LABEL_SCALING_KEY, None) or (0.0, 1.0)
        return [{"text": text, "score": float(row[0]) * std + mean} for text, row in zip(shown, scores)]
    if problem_type == tasks.MULTI_LABEL:
        thresholds = getattr(config, THRESHOLDS_KEY, None) or [0.5] * len(id2label)
        return [{"text": text, "labels": [id2label[i] for i, p in enumerate(probs) if p >= thresholds[i]],
                 "probabilities": {id2label[i]: float(p) for i, p in enumerate(probs)}}
                for text, probs in zip(shown, expit(scores))]
    records = []
    for text, probs in zip(shown, softmax(scores, axis=-1)):
        label_id = int(probs.argmax())
        records.append({"text": text, "label": id2label[label_id], "label_id": label_id,
                        "probabilities": {id2label[i]: float(p) for i, p in enumerate(probs)}})
    return records
