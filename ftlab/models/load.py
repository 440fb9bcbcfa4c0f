"""Load the tokenizer and the classification backbone, in 4 bits for QLoRA."""
from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from ftlab.errors import ModelSourceError
from ftlab.models.architectures import architecture_of
from ftlab.models.sources import ModelSource


def load_tokenizer(source: ModelSource):
    # AutoTokenizer reads the directory's tokenizer.json; building e.g. DistilBertTokenizerFast(vocab_file=…)
    # by hand silently ignores the vocabulary in transformers 5.
    return AutoTokenizer.from_pretrained(source.location)


def quantization_config(model_type: str):
    """nf4 with double quantisation; the head stays in full precision (a quantised head cannot be trained, and
    DistilBERT crashes with 'only Tensors of floating point dtype can require gradients' otherwise)."""
    try:
        import bitsandbytes  # noqa: F401  (imported only to fail with a clear message)
    except ImportError:
        raise ModelSourceError("--method qlora needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    compute_dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype,
                              llm_int8_skip_modules=list(architecture_of(model_type).head))


def load_classifier(source: ModelSource, label_names: list[str], *, quantize_4bit: bool = False) -> PreTrainedModel:
    config = AutoConfig.from_pretrained(source.location, num_labels=len(label_names),
                                        id2label=dict(enumerate(label_names)),
                                        label2id={name: i for i, name in enumerate(label_names)})
    kwargs = {}
    if quantize_4bit:
        kwargs["quantization_config"] = quantization_config(config.model_type)
        kwargs["device_map"] = {"": 0} if torch.cuda.is_available() else {"": "cpu"}
    return AutoModelForSequenceClassification.from_pretrained(source.location, config=config, **kwargs)
