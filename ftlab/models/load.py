"""Load the tokenizer and the classification backbone, in 4 bits for QLoRA."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedConfig, PreTrainedModel

from ftlab import methods, tasks
from ftlab.config import MethodArgs
from ftlab.distributed import process_state
from ftlab.errors import ConfigError, ModelSourceError
from ftlab.models.architectures import discover, dropout_attributes, skeleton
from ftlab.models.sources import ModelSource, load_config


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    """The model's tokenizer, able to pad: decoder LMs' tokenizers often have no pad token, and then pad with their
    EOS token (what the Llama, Qwen and GPT-2 recipes do; attention masks keep padding out of every result).
    `tokenizer.ftlab_pad_token_from_eos` says whether that was done, for the record."""
    # AutoTokenizer reads the directory's tokenizer.json; building e.g. DistilBertTokenizerFast(vocab_file=…)
    # by hand silently ignores the vocabulary in transformers 5.
    tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=trust_remote_code)
    tokenizer.ftlab_pad_token_from_eos = False
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelSourceError(f"--model {source.name}: its tokenizer has neither a pad token nor an EOS token "
                                   f"to pad with; add a pad token to its tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
        tokenizer.ftlab_pad_token_from_eos = True
    return tokenizer


# bitsandbytes 0.50 repacks a CPU 4-bit layer's weight for its fused kernel the first time the layer runs in eval
# mode on a CPU with AVX512-BF16 (bitsandbytes.functional._convert_weight_packed_for_cpu: 32-row tiles over the
# 64-value quantisation blocks); a layer whose output size is not a multiple of the one or input size of the other
# fails there, at the first evaluation. Such layers (Qwen2-MoE's one-output shared_expert_gate, ConvBERT's
# conv_kernel_layer, DeepSeek's latent projections) stay in full precision on every CPU, so that which layers are
# quantised does not depend on the CPU.
CPU_4BIT_ROWS, CPU_4BIT_BLOCK = 32, 64


def four_bit_misfit(module: torch.nn.Module) -> Optional[str]:
    """Why bitsandbytes' CPU 4-bit kernel cannot hold a linear layer (a Linear, or GPT-2's transposed Conv1D); None
    where it can."""
    out_features, in_features = module.weight.shape[::-1] if type(module).__name__ == "Conv1D" else module.weight.shape
    if out_features % CPU_4BIT_ROWS:
        return f"{out_features} outputs, not a multiple of {CPU_4BIT_ROWS} (bitsandbytes' CPU 4-bit kernel)"
    if in_features % CPU_4BIT_BLOCK:
        return f"{in_features} inputs, not a multiple of {CPU_4BIT_BLOCK} (bitsandbytes' CPU 4-bit kernel)"
    return None


def unquantised_layers(model: torch.nn.Module, body_linears: tuple[str, ...]) -> dict[str, str]:
    """The linear layers outside the head that a 4-bit base (loaded or its skeleton) holds in full precision, each
    with the reason; on a loaded model also those transformers' 4-bit loading left as they were."""
    import bitsandbytes as bnb

    kept = {}
    for path in body_linears:
        module = model.get_submodule(path)
        if isinstance(module, bnb.nn.Linear4bit):
            continue
        misfit = None if torch.cuda.is_available() else four_bit_misfit(module)
        if misfit or module.weight.device.type != "meta":
            kept[path] = misfit or "left in full precision by transformers' 4-bit loading"
    return kept


def quantization_config(config: PreTrainedConfig, args: MethodArgs, keep: list[str]):
    """nf4 with double quantisation. `keep`: the modules (by full path: transformers skips a module whose path
    starts with one) that stay in full precision: the head (a quantised head cannot be trained, and DistilBERT
    crashes with 'only Tensors of floating point dtype can require gradients' otherwise) and the layers 4-bit cannot
    hold on this device (unquantised_layers)."""
    try:
        import bitsandbytes  # noqa: F401  (imported only to fail with a clear message)
    except ImportError:
        raise ModelSourceError("--method qlora needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    if args.bnb_4bit_compute_dtype == "auto":
        # CPUs without bf16 units emulate bf16 matmuls, far slower than fp32 (docs/studies/speed.md).
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        compute_dtype = torch.bfloat16 if bf16 else torch.float32
    else:
        compute_dtype = getattr(torch, args.bnb_4bit_compute_dtype)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=args.bnb_4bit_quant_type,
                              bnb_4bit_use_double_quant=args.bnb_4bit_use_double_quant,
                              bnb_4bit_compute_dtype=compute_dtype,
                              llm_int8_skip_modules=keep)


def load_classifier(source: ModelSource, label_names: list[str], args: MethodArgs,
                    attention_dropout: Optional[float] = None,
                    hidden_dropout: Optional[float] = None, trust_remote_code: bool = False,
                    problem_type: str = tasks.SINGLE_LABEL) -> PreTrainedModel:
    """The classifier for `label_names`, in 4 bits for QLoRA; `attention_dropout` and `hidden_dropout` (None: the
    checkpoint's own) replace the dropout on attention probabilities and on the encoder's hidden states
    (ftlab.training.speed.resolve_dropout) where the model has such a setting. The head's dropout stays the
    checkpoint's. `problem_type` becomes the config's, which picks the model's own loss (cross-entropy, binary
    cross-entropy per label, mean squared error) and travels with every saved model; a regression has one output
    named after its target."""
    config = load_config(source, trust_remote_code)
    # Set one by one: as load_config's overrides, a fine-tuned checkpoint's saved problem_type is checked against
    # the new label count before it is replaced (single-label with one output fails).
    config.problem_type = None
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    config.problem_type = problem_type
    attention_key, hidden_key = dropout_attributes(config)
    if attention_dropout is not None and attention_key:
        setattr(config, attention_key, attention_dropout)
    if hidden_dropout is not None and hidden_key:
        if getattr(config, "classifier_dropout", False) is None:
            # BERT's and RoBERTa's heads fall back to the hidden dropout: pin them to the value they had.
            config.classifier_dropout = getattr(config, hidden_key)
        setattr(config, hidden_key, hidden_dropout)
    shape = skeleton(config, trust_remote_code)
    arch = discover(shape)
    head = arch.head
    kwargs = {}
    if methods.get(args.method).four_bit_base:
        keep = [*head, *unquantised_layers(shape, arch.body_linears)]
        kwargs["quantization_config"] = quantization_config(config, args, keep)
        # Each process holds a whole copy on its own GPU: the local rank is the device index on its machine.
        kwargs["device_map"] = {"": process_state().local_process_index if torch.cuda.is_available() else "cpu"}
    # A checkpoint fine-tuned for another label set (say 2 classes, here 3) gets a fresh head instead of a
    # shape error.
    with _expected_head_report_silenced(head):
        return AutoModelForSequenceClassification.from_pretrained(source.location, config=config,
                                                                  ignore_mismatched_sizes=True,
                                                                  trust_remote_code=trust_remote_code, **kwargs)


@contextmanager
def _expected_head_report_silenced(head: tuple[str, ...]) -> Iterator[None]:
    """transformers 5 logs a LOAD REPORT table of the weights it did not find in the checkpoint. For the head of
    a base checkpoint (a new classifier) that is the expected case, and the table is dropped; a report naming any
    weight outside the head still shows."""
    def only_head_rows(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" not in message:
            return True
        keys = [line.split("|")[0].strip() for line in message.splitlines() if line.count("|") >= 2]
        keys = [key for key in keys if key and key != "Key" and not key.startswith("-")]
        return not keys or not all(any(key == h or key.startswith(h + ".") for h in head) for key in keys)

    logger = logging.getLogger("transformers.modeling_utils")
    logger.addFilter(only_head_rows)
    try:
        yield
    finally:
        logger.removeFilter(only_head_rows)


def match_pad_token(model: PreTrainedModel, tokenizer: Any) -> None:
    """A decoder's classifier finds each text's last token from config.pad_token_id and refuses batches of more
    than one without it: give it the tokenizer's (possibly borrowed from EOS)."""
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def check_gradient_checkpointing(model: PreTrainedModel) -> None:
    if not model.supports_gradient_checkpointing:
        raise ConfigError(f"--gradient_checkpointing: {type(model).__name__} does not support it in transformers")
