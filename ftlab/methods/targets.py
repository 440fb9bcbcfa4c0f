"""Which modules a method touches, as full-match patterns over module paths: the layers behind the --lora_<switch>
flags (read from a model's architecture map, ftlab.models.architectures), layers named by hand
(--lora_target_modules), the head, the normalisation layers. Every method with targets reads them from here, so
that `--lora_mlp false` means the same for LoRA, IA3 or VeRA. Light: the standard library only."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from ftlab.errors import ConfigError

# The parts of a transformer block that the --lora_<switch> flags name (ftlab.models.architectures maps them onto
# each architecture's module names).
SWITCHES = ("query", "key", "value", "projection", "mlp")
ALL_LINEAR = "all-linear"  # PEFT's spelling


def names_regex(names: Sequence[str]) -> str:
    """Full-match pattern for modules whose path ends with one of `names` (PEFT's suffix rule for a list)."""
    return rf"(?:.*\.)?(?:{'|'.join(re.escape(n) for n in names)})"


def paths_regex(paths: Sequence[str]) -> str:
    """Full-match pattern for exactly these module paths (under any wrapper's prefix)."""
    return rf"(?:.*\.)?(?:{'|'.join(re.escape(p) for p in paths)})"


def within(name: str, roots: Sequence[str]) -> bool:
    """Whether module path `name` is one of `roots` or inside one."""
    return any(name == root or name.startswith(root + ".") for root in roots)


def module_paths(model: Any, suffix: str) -> list[str]:
    """The full paths of the modules of `model` named `suffix` or ending with it as a dotted suffix ('pooler' ->
    'bert.pooler'): how a head module or a module to train is named independently of the base model's prefix."""
    return [name for name, _ in model.named_modules() if name == suffix or name.endswith("." + suffix)]


def switches_on(args: Any) -> tuple[str, ...]:
    return tuple(switch for switch in SWITCHES if getattr(args, f"lora_{switch}"))


def target_pattern(arch: Any, args: Any) -> Optional[str]:
    """The pattern of the layers a method with targets adapts: --lora_target_modules, else the switches' layers
    (and the head's linears with --lora_head); None where the switches name parameters only (a mixture of
    experts' MLP). `arch`: the model's ftlab.models.architectures.Architecture."""
    if args.lora_target_modules:
        if args.lora_target_modules.strip().lower() == ALL_LINEAR:
            # Resolved here rather than passed to PEFT as "all-linear": PEFT would also wrap the linears of the
            # head that the method trains in full (BERT's pooler, RoBERTa's classifier.dense), and scratch_lora
            # reads the same pattern.
            return paths_regex(arch.body_linears + (arch.head_linears if args.lora_head else ()))
        return names_regex([name.strip() for name in args.lora_target_modules.split(",") if name.strip()])
    return arch.target_regex(switches_on(args), include_head=args.lora_head)


def matching(model: Any, pattern: Optional[str]) -> list[str]:
    """Paths of the modules of `model` whose full path matches `pattern` (the root module excluded)."""
    return [name for name, _ in model.named_modules() if name and pattern and re.fullmatch(pattern, name)]


@dataclass(frozen=True)
class Targets:
    """What a method with targets adapts: the pattern of its layers (None: no layer) and their paths, and the block
    parameters it adapts by full name (mixture-of-experts' expert stacks, for LoRA)."""
    pattern: Optional[str]
    modules: list[str]
    parameters: list[str]


def resolve_targets(model: Any, arch: Any, args: Any, method: str, experts: bool = False) -> Targets:
    """The targets of `method` on `model`; one line where they match nothing, or where the switches name weights
    held as 3-D parameters that the method cannot adapt (`experts`: it adapts expert stacks, as PEFT's LoRA does
    through target_parameters)."""
    pattern = target_pattern(arch, args)
    parameters = _parameter_targets(model, arch, args, method, experts)
    modules = matching(model, pattern)
    if not modules and not parameters:
        given = (f"--lora_target_modules {args.lora_target_modules}" if args.lora_target_modules
                 else f"the --lora_<module> switches ({', '.join(switches_on(args)) or 'none on'})")
        linears = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                          if type(module).__name__ in ("Linear", "Conv1D")})
        raise ConfigError(f"{given}: no layer of {model.config.model_type} matches (--method {method}); its linear "
                          f"layers are named {', '.join(linears) or 'nothing: it has none'}")
    return Targets(pattern, modules, parameters)


def _parameter_targets(model: Any, arch: Any, args: Any, method: str, experts: bool) -> list[str]:
    if args.lora_target_modules:  # layers named by hand
        return []
    switches = switches_on(args)
    wanted = arch.parameter_targets(switches)
    refused = [path for path in wanted if not (experts and path in arch.experts)]
    if refused:
        off = " ".join(f"--lora_{switch} false" for switch in switches
                       if set(arch.parameters.get(switch, ())) & set(refused))
        if all(path in arch.experts for path in refused):
            what, how = "MLP experts", "only --method lora adapts them (PEFT's target_parameters)"
        else:
            what, how = "weights", ("no method here adapts them (PEFT's target_parameters takes a 3-D parameter for a "
                                    "stack of experts, which they are not)")
        raise ConfigError(f"--method {method}: {arch.model_type}'s {what} {', '.join(refused)} are 3-D parameters, "
                          f"not layers; {how}; switch {off} to adapt the other layers, or use full or selective")
    if not wanted:
        return []
    pattern = arch.block_regex(wanted)
    return [name for name, _ in model.named_parameters() if re.fullmatch(pattern, name)]


def head_leaves(model: Any, head: Sequence[str]) -> list[str]:
    """The modules inside the head that hold parameters themselves (BERT's pooler.dense rather than the pooler):
    what PEFT's tuners other than LoRA can wrap as modules_to_save and still merge (their generic module
    replacement reads `.weight` of the wrapped module)."""
    return [name for name, module in model.named_modules()
            if within(name, head) and any(True for _ in module.parameters(recurse=False))]


def norm_paths(model: Any, head: Sequence[str]) -> list[str]:
    """The normalisation layers outside the head (LayerNorm, RMSNorm, ...): LN-tuning's targets on any family."""
    return [name for name, module in model.named_modules()
            if name and "norm" in type(module).__name__.lower() and not within(name, head)
            and any(True for _ in module.parameters(recurse=False))]


def common_width(model: Any, paths: Sequence[str], limit: int) -> int:
    """The largest power of two up to `limit` that divides the input and output widths of every layer in `paths`
    (the block size that VB-LoRA's vectors and C3A's circulant blocks must divide them by)."""
    widths = []
    for path in paths:
        weight = model.get_submodule(path).weight
        widths.extend(weight.shape[-2:])
    divisor = math.gcd(*widths) if widths else 1
    size = 1
    while size * 2 <= limit and divisor % (size * 2) == 0:
        size *= 2
    return size
