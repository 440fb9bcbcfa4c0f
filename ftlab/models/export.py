"""Save what a run trained: the model predict loads (<output_dir>/model unless --save_adapter or --merge wrote one),
a PEFT adapter directory, and/or a merged plain model that loads without peft."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ftlab import methods
from ftlab.config import MethodArgs
from ftlab.models.inference import MODEL_DIR


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
    """What --save_adapter and --merge ask for, and under "model" the directory that predict loads for this run:
    the merged model or the saved adapter where one was asked for, else <output_dir>/model (an adapter directory
    for PEFT methods, a method's own layers merged, the whole model for the others). Checkpoints, which hold optimizer state
    too, can then be deleted (--keep_checkpoints)."""
    saved = {}
    if args.save_adapter:
        saved["adapter"] = str(save_adapter(model, tokenizer, args, Path(args.save_adapter), output_dir))
    if args.merge:
        directory = output_dir / "merged"
        merged_model(model, args.method).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        saved["merged"] = str(directory)
    if "merged" in saved or "adapter" in saved:
        saved["model"] = saved.get("merged") or saved["adapter"]
        return saved
    directory = output_dir / MODEL_DIR
    method = methods.get(args.method)
    if method.adapter:
        save_adapter(model, tokenizer, args, directory, output_dir)
    else:
        # A method of the lab's own that adds layers (scratch_lora) is folded in (in place: the run is over), so
        # that it loads as a plain model.
        plain = merged_model(model, args.method) if method.merges else model
        plain.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    saved["model"] = str(directory)
    return saved
