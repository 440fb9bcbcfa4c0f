"""Save what a run trained: a PEFT adapter directory, and/or a merged plain model that loads without peft."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ftlab.config import MethodArgs


def save_adapter(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, directory: Path) -> Path:
    """adapter_config.json + adapter_model.safetensors (LoRA weights and the fully trained head), the tokenizer,
    and the classifier's config.json so that label names and count travel with the adapter."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    model.get_base_model().config.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def merged_model(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """Fold the adapters into the weights. Note: PEFT's merge_and_unload changes the model in place."""
    if method == "scratch_lora":
        from ftlab.models.scratch_lora import merge_scratch_lora

        return merge_scratch_lora(model)
    merged = model.merge_and_unload()
    if method == "qlora":
        # A plain model must load without bitsandbytes: dequantise the (merged) 4-bit weights.
        merged = merged.dequantize()
    return merged


def export_models(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, args: MethodArgs,
                  output_dir: Path) -> dict[str, str]:
    saved = {}
    if args.save_adapter:
        saved["adapter"] = str(save_adapter(model, tokenizer, Path(args.save_adapter)))
    if args.merge:
        directory = output_dir / "merged"
        merged_model(model, args.method).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        saved["merged"] = str(directory)
    return saved
