"""Texts to logits with a saved model, a torch one (ftlab.models.inference) or an exported graph
(ftlab.models.onnx.OnnxClassifier), each text cut as the model's run cut it: one loop for predict, the export's
parity check and the inference benchmark, so that the backends they compare see the same tokens."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

if TYPE_CHECKING:
    import numpy as np
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ftlab.models.onnx import OnnxClassifier


def _batches(tokenizer: PreTrainedTokenizerBase, config: Any, texts: Sequence[str], batch_size: int,
             max_length: Optional[int], truncation: Optional[str], tensors: str) -> Iterator[Any]:
    """Tokenised batches: the run's saved truncation and max length (head and DEFAULT_MAX_LENGTH tokens when it
    saved none) unless `max_length` / `truncation` say otherwise; each batch padded to its own longest text."""
    from ftlab.data.truncation import encode, saved_truncation
    from ftlab.models.inference import DEFAULT_MAX_LENGTH

    saved_strategy, saved_length = saved_truncation(config)
    for start in range(0, len(texts), batch_size):
        yield encode(tokenizer, list(texts[start:start + batch_size]),
                     max_length=max_length or saved_length or DEFAULT_MAX_LENGTH,
                     truncation=truncation or saved_strategy, padding=True, return_tensors=tensors)


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


def label_records(scores: np.ndarray, texts: Sequence[str], id2label: dict[int, str]) -> list[dict[str, Any]]:
    """One record per text: {"text", "label" (name), "label_id", "probabilities": {name: p}} (softmax of the
    logits)."""
    import numpy as np
    from scipy.special import softmax

    probabilities = softmax(np.asarray(scores, dtype=np.float64), axis=-1)
    records = []
    for text, probs in zip(texts, probabilities):
        label_id = int(probs.argmax())
        records.append({"text": text, "label": id2label[label_id], "label_id": label_id,
                        "probabilities": {id2label[i]: float(p) for i, p in enumerate(probs)}})
    return records
