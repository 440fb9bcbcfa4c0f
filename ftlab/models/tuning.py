"""Apply the run's fine-tuning method (ftlab.methods) to a loaded classifier, and refuse, before any weight loads,
a model that the method cannot train."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ftlab import methods
from ftlab.config import MethodArgs
from ftlab.errors import ConfigError
from ftlab.methods import ApplyContext
from ftlab.models.architectures import Architecture, discover, skeleton


def adapter_type(directory: str) -> Optional[str]:
    """The PEFT type of the adapter saved in `directory` (its adapter_config.json), e.g. LORA."""
    config = Path(directory) / "adapter_config.json"
    return json.loads(config.read_text(encoding="utf-8")).get("peft_type") if config.is_file() else None


def continues_adapter(args: MethodArgs) -> bool:
    """Whether --load_adapter is continued by the method (an adapter of its own kind) rather than merged in first."""
    method = methods.get(args.method)
    return bool(args.load_adapter) and method.adapter and adapter_type(args.load_adapter) == method.peft_type


def apply_method(model: Any, args: MethodArgs, arch: Optional[Architecture] = None,
                 context: Optional[ApplyContext] = None) -> Any:
    """Decide what trains. With --load_adapter, a method of the adapter's kind continues it; any other method starts
    from the base with the adapter merged in (the seed's "LoRA, then fine-tune the head" chain). `arch`: the model's,
    where the caller discovered it already; `context`: what a run offers beyond it (ftlab.methods.ApplyContext)."""
    context = context or ApplyContext(arch=arch or discover(model))
    method = methods.get(args.method)
    if continues_adapter(args):
        return method.continue_from(model, args.load_adapter, args)
    if args.load_adapter:
        adapter = methods.of_adapter(str(adapter_type(args.load_adapter)))
        model = adapter.load(model, args.load_adapter).merge_and_unload()
    method.check(model, args, context.arch)  # as before loading; callers that built the model themselves get it here
    return method.apply(model, args, context)


def check_method_fits(config: Any, args: MethodArgs, trust_remote_code: bool = False) -> Architecture:
    """The method's own refusals (prefix tuning on an encoder, targets that match nothing, BitFit without biases,
    ...) checked on the model's skeleton, which has no weights: one line before the data and the weights load."""
    try:
        model = skeleton(config, trust_remote_code)
    except ValueError as exc:  # transformers: "Unrecognized configuration class ... for this kind of AutoModel"
        if "Unrecognized configuration class" not in str(exc):
            raise ConfigError(f"model type {config.model_type!r}: transformers cannot build its sequence classifier: "
                              f"{str(exc).splitlines()[0][:200]}") from None
        raise ConfigError(f"model type {config.model_type!r} has no sequence-classification class in transformers "
                          f"(AutoModelForSequenceClassification does not know {type(config).__name__}); the "
                          f"families page of the docs lists those tried") from None
    arch = discover(model)
    if not continues_adapter(args):
        methods.get(args.method).check(model, args, arch)
    return arch
