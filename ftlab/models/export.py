"""Save what a run trained: the model predict loads (<output_dir>/model unless --save_adapter or --merge wrote one),
a PEFT adapter directory, and/or a merged plain model that loads without peft."""
from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ftlab.config import PEFT_METHODS, MethodArgs
from ftlab.models.inference import MODEL_DIR


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
    if method == "qlora":
        return _merged_dequantized(model)
    return model.merge_and_unload()


def _merged_dequantized(model: torch.nn.Module) -> torch.nn.Module:
    """A QLoRA model merged in full precision, loadable without bitsandbytes.

    PEFT's merge into a 4-bit layer dequantises W, adds the LoRA update and quantises W + ΔW again, so the exported
    model loses most of ΔW to the 4-bit grid (measured: its predictions no longer matched the run's). Instead the
    base is dequantised first and the same adapter weights (LoRA matrices and the trained head) are merged into it
    by PEFT's ordinary full-precision merge.
    """
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    adapter_config = model.peft_config[model.active_adapter]
    trained = get_peft_model_state_dict(model)
    base = model.unload().dequantize()  # the untouched 4-bit base weights, dequantised; the head as trained
    plain = get_peft_model(base, adapter_config)
    set_peft_model_state_dict(plain, trained)
    return plain.merge_and_unload()


def export_models(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, args: MethodArgs,
                  output_dir: Path) -> dict[str, str]:
    """What --save_adapter and --merge ask for, and under "model" the directory that predict loads for this run:
    the merged model or the saved adapter where one was asked for, else <output_dir>/model (an adapter directory
    for PEFT methods, scratch_lora merged, the whole model for the others). Checkpoints, which hold optimizer state
    too, can then be deleted (--keep_checkpoints)."""
    saved = {}
    if args.save_adapter:
        saved["adapter"] = str(save_adapter(model, tokenizer, Path(args.save_adapter)))
    if args.merge:
        directory = output_dir / "merged"
        merged_model(model, args.method).save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        saved["merged"] = str(directory)
    if "merged" in saved or "adapter" in saved:
        saved["model"] = saved.get("merged") or saved["adapter"]
        return saved
    directory = output_dir / MODEL_DIR
    if args.method in PEFT_METHODS:
        save_adapter(model, tokenizer, directory)
    else:
        # scratch_lora's adapters are folded in (in place: the run is over), so it loads as a plain model.
        plain = merged_model(model, args.method) if args.method == "scratch_lora" else model
        plain.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    saved["model"] = str(directory)
    return saved
