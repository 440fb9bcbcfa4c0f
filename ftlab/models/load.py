"""Load the tokenizer and the classification backbone, in 4 bits for QLoRA."""
from __future__ import annotations

from typing import Optional

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from ftlab.config import MethodArgs
from ftlab.distributed import process_state
from ftlab.errors import ModelSourceError
from ftlab.models.architectures import architecture_of
from ftlab.models.sources import ModelSource


def load_tokenizer(source: ModelSource):
    # AutoTokenizer reads the directory's tokenizer.json; building e.g. DistilBertTokenizerFast(vocab_file=…)
    # by hand silently ignores the vocabulary in transformers 5.
    return AutoTokenizer.from_pretrained(source.location)


def quantization_config(model_type: str, args: MethodArgs):
    """nf4 with double quantisation; the head stays in full precision (a quantised head cannot be trained, and
    DistilBERT crashes with 'only Tensors of floating point dtype can require gradients' otherwise)."""
    try:
        import bitsandbytes  # noqa: F401  (imported only to fail with a clear message)
    except ImportError:
        raise ModelSourceError("--method qlora needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    if args.bnb_4bit_compute_dtype == "auto":
        # CPUs without bf16 units run bf16 matmuls ~20x slower than fp32 (measured on this project's EPYC).
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        compute_dtype = torch.bfloat16 if bf16 else torch.float32
    else:
        compute_dtype = getattr(torch, args.bnb_4bit_compute_dtype)
    # transformers matches a skip name as a prefix or a suffix of the module path: BERT's "pooler" is neither of
    # "bert.pooler.dense", so the head's linears are listed by their full paths too.
    arch = architecture_of(model_type)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=args.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=args.bnb_4bit_use_double_quant,
                              bnb_4bit_compute_dtype=compute_dtype,
                              llm_int8_skip_modules=[*arch.head, *arch.head_linears])


def load_classifier(source: ModelSource, label_names: list[str], args: MethodArgs,
                    attention_dropout: Optional[float] = None,
                    hidden_dropout: Optional[float] = None) -> PreTrainedModel:
    """The classifier for `label_names`, in 4 bits for QLoRA; `attention_dropout` and `hidden_dropout` (None: the
    checkpoint's own) replace the dropout on attention probabilities and on the encoder's hidden states
    (ftlab.training.speed.resolve_dropout). The head's dropout stays the checkpoint's."""
    config = AutoConfig.from_pretrained(source.location, num_labels=len(label_names),
                                        id2label=dict(enumerate(label_names)),
                                        label2id={name: i for i, name in enumerate(label_names)})
    arch = architecture_of(config.model_type)
    if attention_dropout is not None:
        setattr(config, arch.attention_dropout, attention_dropout)
    if hidden_dropout is not None:
        if getattr(config, "classifier_dropout", False) is None:
            # BERT's and RoBERTa's heads fall back to the hidden dropout: pin them to the value they had.
            config.classifier_dropout = getattr(config, arch.hidden_dropout)
        setattr(config, arch.hidden_dropout, hidden_dropout)
    kwargs = {}
    if args.method == "qlora":
        kwargs["quantization_config"] = quantization_config(config.model_type, args)
        # Each process holds a whole copy on its own GPU: the local rank is the device index on its machine.
        kwargs["device_map"] = {"": process_state().local_process_index if torch.cuda.is_available() else "cpu"}
    # A checkpoint fine-tuned for another label set (say 2 classes, here 3) gets a fresh head instead of a
    # shape error; transformers names the re-initialised weights in its load report.
    return AutoModelForSequenceClassification.from_pretrained(source.location, config=config,
                                                              ignore_mismatched_sizes=True, **kwargs)
