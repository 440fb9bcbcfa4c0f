"""What the lab asks of a fine-tuning method, in one class: its name and label, what trains, how it is applied to a
loaded classifier, its default learning rate and search ranges, which flags it reads, whether it saves a PEFT
adapter, merges into a plain checkpoint or trains on a 4-bit base, and its training FLOPs per sample.

Each method is an instance declared in one module of this package and listed by ftlab.methods.registry; flags,
validation, loading, export, FLOP counts, report, curve, search and bench read it from there. Light on import:
torch and peft load only inside the methods that apply or merge (the config layer reads the declarations).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from ftlab.errors import ConfigError

# The flags of the `method` group that select targets: a method that reads one reads them all.
TARGET_FLAGS = ("lora_query", "lora_key", "lora_value", "lora_projection", "lora_mlp", "lora_head",
                "lora_target_modules")


@dataclass
class ApplyContext:
    """What applying a method may need besides the model and its flags."""
    arch: Any  # the model's ftlab.models.architectures.Architecture
    # The run's training batches, for data-driven initialisations (LoRA's EVA and CorDA); None outside a run.
    batches: Optional[Callable[[], Iterable[dict]]] = None
    model_location: Optional[str] = None  # directory of the base weights (LoftQ reads them again)
    total_steps: Optional[int] = None  # optimizer steps the run will take (AdaLoRA's rank schedule)
    run_dir: Optional[Path] = None  # the run's directory, for what a method keeps beside its checkpoints


@dataclass(frozen=True)
class Method:
    """One way to fine-tune. Subclasses (one per kind of implementation) fill `apply`; instances declare the rest.

    flags: the `method` flags it reads beyond --method (a typed flag the method does not read is an error; its value
    is reset to the default in the saved config). flag_defaults: its own default for a shared flag it reads, where
    the flag's general default does not fit (VeRA's rank 256). search_space: its own hyperparameters' search ranges
    in `main.py search --space` syntax. passes: training FLOPs per sample relative to one forward pass (3 when every
    weight gets a gradient, 2 when only the activations' gradients flow through frozen weights, 1 when nothing
    upstream of the head needs a gradient)."""
    name: str
    label: str
    trains: str
    default_lr: float
    lr_range: tuple[float, float]
    lr_source: str
    flags: tuple[str, ...] = ()
    flag_defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    legacy_flag: Optional[str] = None  # a seed project's flag that selects it (`--lora`)
    peft_type: Optional[str] = None  # PEFT's PeftType name, for the methods that are PEFT's (adapters of that kind)
    adapter: bool = False  # trains a PEFT adapter: --save_adapter saves it, --load_adapter continues it
    merges: bool = False  # --merge folds what it trained into a plain checkpoint
    four_bit_base: bool = False  # loads the base model in 4 bits (QLoRA)
    on_four_bit: bool = False  # can train on a 4-bit base
    passes: float = 2.0

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        """Make `model` (a transformers classifier, not yet wrapped) train this way; the model to train."""
        raise NotImplementedError

    def check_args(self, args: Any) -> None:
        """Refuse, with one line, flag values this method cannot take together, from the values alone."""

    def check(self, model: Any, args: Any, arch: Any) -> None:
        """Refuse, with one line, a model this method cannot train, before its weights load. `model`: the
        classifier's skeleton on the meta device (ftlab.models.architectures.skeleton)."""

    def wrap_base(self, model: Any) -> Any:
        """The base model as the method's PEFT wrapper needs it (before applying, continuing or loading an adapter
        of this method)."""
        return model

    def merge(self, model: Any) -> Any:
        """The trained model folded into a plain transformers model (in place where the method allows)."""
        if not self.merges:
            raise ConfigError(f"--merge: --method {self.name} cannot be merged into a plain checkpoint")
        return model.merge_and_unload()

    def load(self, model: Any, adapter_dir: str, trainable: bool = False) -> Any:
        """`model` (the base) with the adapter of this method saved in `adapter_dir` (PEFT's from_pretrained), on
        the base as the method's wrapper needs it."""
        from peft import PeftModel

        return PeftModel.from_pretrained(self.wrap_base(model), adapter_dir, is_trainable=trainable)

    def continue_from(self, model: Any, adapter_dir: str, args: Any) -> Any:
        """The model with a saved adapter of this method loaded for more training (--load_adapter)."""
        return self.load(model, adapter_dir, trainable=True)

    def save_adapter(self, model: Any, args: Any, target: Path, run_dir: Path) -> None:
        """Write the trained adapter (PEFT's save_pretrained) to `target` (--save_adapter)."""
        model.save_pretrained(target)

    def callbacks(self, model: Any, args: Any) -> list[Any]:
        """TrainerCallbacks the method needs during training (AdaLoRA reallocates its ranks every step)."""
        return []

    def optimizer(self, model: Any, args: Any, optimizer_cls: type, optimizer_kwargs: dict) -> Any:
        """An optimizer of the method's own (LoRA+'s per-matrix learning rates), or None for the Trainer's."""
        return None

    def default(self, flag: str, general: Any) -> Any:
        """The value of a shared flag when the user set none: the method's own, else the flag's general one."""
        return self.flag_defaults.get(flag, general)

    def reads(self, flag: str) -> bool:
        return flag in self.flags

    def describe(self, args: Mapping[str, Any]) -> str:
        """The label of a run in tables: the method with the settings that tell its variants apart. `args`: the
        record's `config.method` section."""
        return self.name


@dataclass(frozen=True)
class ParameterCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


def count_parameters(model: Any) -> ParameterCount:
    if hasattr(model, "get_nb_trainable_parameters"):
        # PEFT's count knows that a packed 4-bit weight holds two parameters per byte.
        trainable, total = model.get_nb_trainable_parameters()
        return ParameterCount(trainable, total)
    params = list(model.parameters())
    return ParameterCount(sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params))
