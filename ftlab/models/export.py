"""Save what a run trained: a PEFT adapter directory, and/or a merged plain model that loads without peft."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ftlab import methods
from ftlab.config import MethodArgs


def save_adapter(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, args: MethodArgs, directory: Path,
                 run_dir: Path) -> Path:
    """adapter_config.json + adapter_model.safetensors (the adapter's weights and the fully trained head), the
    tokenizer, and the classifier's config.json so that label names and count travel with the adapter."""
    directory.mkdir(parents=True, exist_ok=True)
    methods.get(args.method).save_adapter(model, args, directory, run_dir)
    model.get_base_model().config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def merged_model(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """Fold what the method trained into the weights: a plain transformers model (in place where PEFT merges so)."""
    return methods.get(method).merge(model)


def export_models(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, args: MethodArgs,
                  output_dir: Path) -> dict[str, str]:
    saved = {}
    if args.save_adapter:
        saved["adapter"] = str(save_adapter(model, tokenizer, args, Path(args.save_adapter), output_dir))
    if args.merge:
        directory = output_dir / "merged"
        merged_model(model, args.method).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        saved["merged"] = str(directory)
    return saved
