"""A plain classifier as an ONNX graph: exported with its pooling inside the graph, quantised by ONNX Runtime, and run
by ONNX Runtime with the run's tokenizer, truncation and label names.

The export traces the model as ftlab runs it: the pooling hooks (ftlab.models.pooling) run during the trace, so
mean or last-token pooling becomes part of the graph, and the graph's `logits` are what the torch model computes.
The directory holds the graph(s), config.json (label names, ftlab_pooling, ftlab_truncation, ftlab_max_length) and
the tokenizer, so that predict (or any ONNX Runtime user) cuts texts as the run did.

Why torch.onnx.export (TorchScript tracing) and not optimum's exporter: optimum-onnx (0.1.0, the one release that
carries optimum.exporters.onnx since optimum 2) requires transformers < 4.58 and fails to import on transformers 5;
optimum 2.3 itself has no ONNX exporter. Of torch's two exporters the TorchScript one exports our tiny test models
in 5-9 s on two cores against 40-60 s for the dynamo one (which also needs onnxscript), and both give the same
graph's logits to 1e-7. The TorchScript exporter mis-traces transformers' SDPA attention (logits off by 1e-2 on a
padded batch), so the model is switched to eager attention before the trace: the parity check catches either.
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime
    from transformers import PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

ONNX_FILE = "model.onnx"  # the fp32 graph, always written: what the quantised graphs are made from
QUANTIZED_FILES = {"int8": "model_int8.onnx", "fp16": "model_fp16.onnx"}
QUANTIZATIONS = tuple(QUANTIZED_FILES)
EXPORT_RECORD = "export.json"  # what `export` wrote and measured; names the graph predict --backend onnx loads
OPSET = 17  # LayerNormalization is a single op from opset 17 on
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a classifier's forward may take from a tokenizer


def _trace_inputs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """A padded batch of two texts of different lengths: the trace then sees padding, so nothing that depends on
    the mask is frozen as a constant."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    encoded = tokenizer(["a short text", "a longer text, with some more words in it"], padding=True,
                        return_tensors="pt")
    return {name: encoded[name] for name in INPUTS if name in encoded and name in accepted}


def export_onnx(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, directory: Path) -> Path:
    """Write `model` (a plain transformers classifier, pooling hooks attached) to directory/model.onnx with dynamic
    batch and sequence axes, beside its config and tokenizer; returns the graph's path."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.set_attn_implementation("eager")
    inputs = _trace_inputs(model, tokenizer)
    names = list(inputs)

    class LogitsOnly(torch.nn.Module):
        """The classifier with positional inputs and one output: what the tracer needs."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, tensors))).logits

    path = directory / ONNX_FILE
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer's notes on Python branches it folds (e.g. "is_causal"): they concern the traced shapes'
        # static facts, which the dynamic axes and the parity check cover.
        warnings.simplefilter("ignore")
        torch.onnx.export(LogitsOnly().eval(), tuple(inputs.values()), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    model.config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return path


def quantize(source: Path, kind: str) -> Path:
    """The graph at `source` quantised: int8 (ONNX Runtime's dynamic quantisation: int8 weights, activations
    quantised per batch at run time; fast on CPUs) or fp16 (weights and activations in half precision, inputs and
    logits kept as they were; for GPUs). Written beside it (QUANTIZED_FILES)."""
    target = source.parent / QUANTIZED_FILES[kind]
    if kind == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # ONNX Runtime asks (a root-logger warning) for its pre-processing first; its symbolic shape inference fails
        # on these traced graphs ("Incomplete symbolic shape inference"), and the parity check measures the
        # quantised graph either way.
        def no_request(record: logging.LogRecord) -> bool:
            return "pre-processing before quantization" not in record.getMessage()

        root = logging.getLogger()
        root.addFilter(no_request)
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            root.removeFilter(no_request)
    else:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(target))
    return target


def graph_size_bytes(path: Path) -> int:
    """The graph with the weights it keeps in external data files (large models), if any."""
    return sum(file.stat().st_size for file in path.parent.iterdir()
               if file == path or file.name.startswith(path.name + ".") or file.name == path.stem + ".data")


def exported_graph(directory: Path) -> Path:
    """The graph an export directory deploys: the one its export.json names (the quantised one when asked for),
    else the fp32 graph."""
    record = directory / EXPORT_RECORD
    if record.is_file():
        return directory / json.loads(record.read_text(encoding="utf-8"))["graph"]
    return directory / ONNX_FILE


@dataclass
class OnnxClassifier:
    """An exported graph with what it needs to label texts: its ONNX Runtime session, tokenizer and config."""
    session: onnxruntime.InferenceSession
    tokenizer: PreTrainedTokenizerBase
    config: PreTrainedConfig
    path: Path

    @classmethod
    def load(cls, graph: Path, threads: Optional[int] = None) -> "OnnxClassifier":
        """The graph at `graph` (its directory holds the config and tokenizer). `threads`: ONNX Runtime's
        intra-op threads (default: OMP_NUM_THREADS where set, else ONNX Runtime's own choice)."""
        import onnxruntime
        from transformers import AutoConfig, AutoTokenizer

        options = onnxruntime.SessionOptions()
        threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0)
        if threads:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        return cls(session, AutoTokenizer.from_pretrained(graph.parent), AutoConfig.from_pretrained(graph.parent),
                   graph)

    @property
    def input_names(self) -> list[str]:
        return [graph_input.name for graph_input in self.session.get_inputs()]

    def run(self, encoded: Mapping[str, Any]) -> np.ndarray:
        """The float32 logits of one tokenised batch (numpy arrays; inputs the graph does not take are left out)."""
        import numpy as np

        feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in self.input_names}
        return self.session.run(["logits"], feed)[0].astype(np.float32)
