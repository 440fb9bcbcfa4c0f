"""PEFT's tuners that adapt the target layers (every PeftType that trains a sequence classifier this way), each with
the lab's shared flags mapped onto its own fields. Left out, with the reason: ftlab/methods/registry.LEFT_OUT.

Default learning rates: the method's paper where it gives one for GLUE-style classification, else its family's;
`main.py compare` tunes them per method. Search ranges span about ten times either side."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftlab.errors import ConfigError
from ftlab.methods.base import ApplyContext
from ftlab.methods.peft_method import NORMS, PeftMethod
from ftlab.methods.targets import resolve_targets

UNPUBLISHED = "no published setting for text classification: LoRA's, to be tuned by `main.py compare`"


@dataclass(frozen=True)
class AdaLora(PeftMethod):
    """AdaLoRA's rank budget moves during training: its schedule needs the run's step count, and its ranks are
    reallocated after every optimizer step (peft's update_and_allocate, which reads the step's gradients)."""

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        steps = max(context.total_steps or 0, 10)
        schedule = {"total_step": steps, "tinit": steps // 10, "tfinal": steps // 5, "deltaT": max(1, steps // 50)}
        args = _with_peft_args(args, {**schedule, **(args.peft_args or {})})
        return super().apply(model, args, context)

    def callbacks(self, model: Any, args: Any) -> list[Any]:
        from transformers import TrainerCallback

        class ReallocateRanks(TrainerCallback):
            def on_optimizer_step(self, training_args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                # Called after the optimizer step and before the gradients are zeroed, as AdaLoRA requires.
                kwargs["model"].base_model.update_and_allocate(state.global_step)

        return [ReallocateRanks()]

    def reserved(self) -> dict[str, str]:
        return {**super().reserved(), "total_step": "the run's optimizer steps"}


@dataclass(frozen=True)
class Beft(PeftMethod):
    """BEFT's shifts merge into the layers' biases, so a layer without one cannot take them (Llama-like blocks)."""

    def check(self, model: Any, args: Any, arch: Any) -> None:
        super().check(model, args, arch)
        if args.merge:
            unbiased = [path for path in resolve_targets(model, arch, args, self.name).modules
                        if getattr(model.get_submodule(path), "bias", None) is None]
            if unbiased:
                raise ConfigError(f"--merge: --method {self.name} merges into the layers' biases, and "
                                  f"{arch.model_type}'s {unbiased[0].rsplit('.', 1)[-1]} has none; use --save_adapter")


def _with_peft_args(args: Any, peft_args: dict) -> Any:
    import copy

    args = copy.copy(args)
    args.peft_args = peft_args
    return args


def _rank(**own: str) -> dict[str, str]:
    return {"lora_r": "r", **own}


_LOW_RANK_LR = dict(default_lr=5e-4, lr_range=(5e-5, 5e-3))
_VECTOR_LR = dict(default_lr=5e-3, lr_range=(5e-4, 5e-2))
METHODS = (
    # Scaling vectors
    PeftMethod(name="ia3", label="IA³", peft_type="IA3", config=("tuners/ia3/config.py", "IA3Config"),
               trains="vectors scaling the target layers' outputs (MLP layers: inputs), and the head",
               feedforward="feedforward_modules", merges=True, on_four_bit=True, default_lr=5e-3,
               lr_range=(5e-4, 5e-2), lr_source="Liu et al. 2022 (T-Few: 3e-3)"),
    PeftMethod(name="ln_tuning", label="LN-tuning", peft_type="LN_TUNING",
               config=("tuners/ln_tuning/config.py", "LNTuningConfig"), targets=NORMS, merges=True,
               trains="every normalisation layer's scale and shift, and the head", default_lr=1e-3,
               lr_range=(1e-4, 1e-2), lr_source="Qi et al. 2022 (LN-tuning: 1e-3 class)"),
    Beft(name="beft", label="BEFT", peft_type="BEFT", config=("tuners/beft/config.py", "BeftConfig"),
               trains="bias-like shift vectors on the target layers, and the head", merges=True, **_VECTOR_LR,
               lr_source="BitFit's class of methods (vectors: ~10x LoRA's)"),
    # Low-rank and reparametrised updates
    AdaLora(name="adalora", label="AdaLoRA", peft_type="ADALORA",
            config=("tuners/adalora/config.py", "AdaLoraConfig"),
            peft_flags={"lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout"}, merges=True,
            on_four_bit=True, trains="SVD-form adapters whose ranks (12 -> 8 per layer on average) move to where "
            "they matter, and the head", default_lr=1e-3, lr_range=(1e-4, 1e-2),
            lr_source="Zhang et al. 2023 (AdaLoRA, GLUE: 5e-4..1.2e-3)"),
    PeftMethod(name="loha", label="LoHa", peft_type="LOHA", config=("tuners/loha/config.py", "LoHaConfig"),
               peft_flags=_rank(lora_alpha="alpha", lora_dropout="module_dropout"), merges=True,
               trains="Hadamard products of two rank-r pairs on the target layers, and the head",
               search_space={"lora_r": "4,8,16"}, default_lr=1e-3, lr_range=(1e-4, 1e-2),
               lr_source="LyCORIS (Yeh et al. 2024): higher than LoRA's"),
    PeftMethod(name="lokr", label="LoKr", peft_type="LOKR", config=("tuners/lokr/config.py", "LoKrConfig"),
               peft_flags=_rank(lora_alpha="alpha", lora_dropout="module_dropout"), merges=True,
               trains="Kronecker products of a small and a low-rank matrix on the target layers, and the head",
               search_space={"lora_r": "4,8,16"}, default_lr=1e-3, lr_range=(1e-4, 1e-2),
               lr_source="LyCORIS (Yeh et al. 2024): higher than LoRA's"),
    PeftMethod(name="vera", label="VeRA", peft_type="VERA", config=("tuners/vera/config.py", "VeraConfig"),
               peft_flags=_rank(lora_dropout="vera_dropout"), merges=True,
               trains="two scaling vectors per target layer around shared frozen random rank-256 matrices, and "
               "the head", **_VECTOR_LR, lr_source="Kopiczko et al. 2024 (VeRA, GLUE: 4e-3..1e-2)"),
    PeftMethod(name="pvera", label="PVeRA", peft_type="PVERA", config=("tuners/pvera/config.py", "PveraConfig"),
               peft_flags=_rank(lora_dropout="pvera_dropout"), merges=True, on_four_bit=True,
               trains="VeRA with probabilistic scaling vectors, and the head", **_VECTOR_LR,
               lr_source="VeRA's"),
    PeftMethod(name="vblora", label="VB-LoRA", peft_type="VBLORA", config=("tuners/vblora/config.py", "VBLoRAConfig"),
               peft_flags=_rank(lora_dropout="vblora_dropout"), sized=("vector_length", 256), merges=True,
               trains="rank-r adapters composed from one shared bank of 256 vectors, and the head",
               default_lr=1e-3, lr_range=(1e-4, 1e-2), lr_source="Li et al. 2024 (VB-LoRA: vector bank 1e-3)"),
    PeftMethod(name="randlora", label="RandLoRA", peft_type="RANDLORA",
               config=("tuners/randlora/config.py", "RandLoraConfig"),
               peft_flags=_rank(lora_dropout="randlora_dropout"), merges=True, on_four_bit=True,
               trains="scaling of full-rank sums of shared frozen random bases, and the head", **_LOW_RANK_LR,
               lr_source=UNPUBLISHED),
    PeftMethod(name="fourierft", label="FourierFT", peft_type="FOURIERFT",
               config=("tuners/fourierft/config.py", "FourierFTConfig"), merges=True, budget="n_frequency",
               trains="1,000 spectral coefficients per target layer (inverse DFT to the update), and the head",
               default_lr=1e-2, lr_range=(1e-3, 1e-1), lr_source="Gao et al. 2024 (FourierFT, GLUE: 5e-2 for the "
               "coefficients, lower for the head: one rate here)"),
    PeftMethod(name="waveft", label="WaveFT", peft_type="WAVEFT", config=("tuners/waveft/config.py", "WaveFTConfig"),
               merges=True, budget="n_frequency", trains="sparse wavelet coefficients per target layer, and the head",
               default_lr=1e-2,
               lr_range=(1e-3, 1e-1), lr_source="FourierFT's (a spectral method of the same kind)"),
    PeftMethod(name="c3a", label="C3A", peft_type="C3A", config=("tuners/c3a/config.py", "C3AConfig"),
               sized=("block_size", 256), merges=True,
               trains="circular-convolution kernels per target layer, and the head", default_lr=1e-3,
               lr_range=(1e-4, 1e-2), lr_source=UNPUBLISHED),
    PeftMethod(name="deft", label="DEFT", peft_type="DEFT", config=("tuners/deft/config.py", "DeftConfig"),
               peft_flags=_rank(lora_dropout="deft_dropout"), merges=True,
               trains="a decomposed low-rank update per target layer, and the head", **_LOW_RANK_LR,
               lr_source=UNPUBLISHED),
    PeftMethod(name="delora", label="DeLoRA", peft_type="DELORA", config=("tuners/delora/config.py", "DeloraConfig"),
               peft_flags=_rank(lora_dropout="module_dropout"), merges=True,
               trains="normalised, bounded rank-r updates on the target layers, and the head", **_LOW_RANK_LR,
               lr_source=UNPUBLISHED),
    PeftMethod(name="frod", label="FRoD", peft_type="FROD", config=("tuners/frod/config.py", "FrodConfig"),
               peft_flags={"lora_dropout": "frod_dropout"}, fixed={"progressbar": False}, merges=True,
               trains="a sparse set of rotations of each target layer's decomposition, and the head",
               default_lr=1e-3, lr_range=(1e-4, 1e-2), lr_source=UNPUBLISHED),
    PeftMethod(name="glora", label="GLoRA", peft_type="GLORA", config=("tuners/glora/config.py", "GloraConfig"),
               peft_flags=_rank(), merges=True, plain_linear=True,
               trains="generalised LoRA (weight, bias and activation prompts), "
               "and the head", **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    PeftMethod(name="gralora", label="GraLoRA", peft_type="GRALORA",
               config=("tuners/gralora/config.py", "GraloraConfig"),
               peft_flags=_rank(lora_alpha="alpha", lora_dropout="gralora_dropout"), merges=True,
               trains="a grid of block-wise low-rank updates per target layer, and the head", **_LOW_RANK_LR,
               lr_source="LoRA's (Jung et al. 2025 compare at equal rates)"),
    PeftMethod(name="hira", label="HiRA", peft_type="HIRA", config=("tuners/hira/config.py", "HiraConfig"),
               peft_flags=_rank(lora_dropout="hira_dropout"), merges=True, on_four_bit=True,
               trains="a Hadamard product of the frozen weight with a rank-r update, and the head", **_LOW_RANK_LR,
               lr_source=UNPUBLISHED),
    PeftMethod(name="miss", label="MiSS", peft_type="MISS", config=("tuners/miss/config.py", "MissConfig"),
               peft_flags=_rank(lora_dropout="miss_dropout"), merges=True,
               trains="one shared shard matrix per target layer, expanded to its size, and the head", **_LOW_RANK_LR,
               lr_source=UNPUBLISHED),
    PeftMethod(name="shira", label="SHiRA", peft_type="SHIRA", config=("tuners/shira/config.py", "ShiraConfig"),
               peft_flags=_rank(), merges=True, linear_only=True, trains="a sparse set (1-2%) of each target layer's own weights, and "
               "the head", **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    PeftMethod(name="tinylora", label="TinyLoRA", peft_type="TINYLORA",
               config=("tuners/tinylora/config.py", "TinyLoraConfig"),
               peft_flags=_rank(lora_dropout="tinylora_dropout"), merges=True,
               trains="a few tied coefficients over frozen random projections, and the head", **_VECTOR_LR,
               lr_source="VeRA's (a projection method of the same kind)"),
    PeftMethod(name="unilora", label="Uni-LoRA", peft_type="UNILORA",
               config=("tuners/unilora/config.py", "UniLoraConfig"),
               peft_flags=_rank(lora_dropout="unilora_dropout"), merges=True,
               trains="one shared vector projected into every target layer's LoRA matrices, and the head",
               **_VECTOR_LR, lr_source="VeRA's (a projection method of the same kind)"),
    PeftMethod(name="lily", label="Lily", peft_type="LILY", config=("tuners/lily/config.py", "LilyConfig"),
               peft_flags=_rank(), trains="low-rank adapters whose up-projections are shared experts, and the head",
               **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    PeftMethod(name="peanut", label="PEANuT", peft_type="PEANUT", config=("tuners/peanut/config.py", "PeanutConfig"),
               peft_flags=_rank(), merges=True, trains="a small network of the frozen weight per target layer, and the "
               "head", **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    PeftMethod(name="psoft", label="PSOFT", peft_type="PSOFT", config=("tuners/psoft/config.py", "PsoftConfig"),
               peft_flags=_rank(lora_alpha="psoft_alpha", lora_dropout="psoft_dropout"), merges=True, linear_only=True,
               trains="orthogonal transforms in each target layer's principal subspace, and the head",
               **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    PeftMethod(name="supertuning", label="SuperTuning", peft_type="SUPERTUNING",
               config=("tuners/supertuning/config.py", "SupertuningConfig"),
               peft_flags={"lora_dropout": "lora_dropout"}, merges=True,
               trains="a selected sparse subset of the target layers' weights, and the head", **_LOW_RANK_LR,
               lr_source=UNPUBLISHED),
    PeftMethod(name="adamss", label="AdaMSS", peft_type="ADAMSS", config=("tuners/adamss/config.py", "AdamssConfig"),
               merges=True, trains="updates in adaptive subspaces of each target layer's SVD, and the head",
               **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    PeftMethod(name="osf", label="OSF", peft_type="OSF", config=("tuners/osf/config.py", "OSFConfig"), merges=True,
               trains="each target layer's minor singular subspace (orthogonal to its major one), and the head",
               **_LOW_RANK_LR, lr_source=UNPUBLISHED),
    # Orthogonal (multiplicative) updates
    PeftMethod(name="oft", label="OFT", peft_type="OFT", config=("tuners/oft/config.py", "OFTConfig"),
               peft_flags={"lora_dropout": "module_dropout"}, sized=("oft_block_size", 32), merges=True,
               linear_only=True,
               trains="block-diagonal orthogonal rotations of each target layer, and the head", **_LOW_RANK_LR,
               lr_source="Liu et al. 2024 (BOFT's GLUE rates: 3e-4..8e-4)"),
    PeftMethod(name="boft", label="BOFT", peft_type="BOFT", config=("tuners/boft/config.py", "BOFTConfig"),
               peft_flags={"lora_dropout": "boft_dropout"}, merges=True, linear_only=True,
               trains="butterfly-factorised orthogonal rotations of each target layer, and the head",
               **_LOW_RANK_LR, lr_source="Liu et al. 2024 (BOFT, GLUE: 3e-4..8e-4)"),
    PeftMethod(name="hra", label="HRA", peft_type="HRA", config=("tuners/hra/config.py", "HRAConfig"),
               peft_flags=_rank(), merges=True, trains="a chain of r Householder reflections per target layer, and "
               "the head", default_lr=1e-3, lr_range=(1e-4, 1e-2), lr_source="Yuan et al. 2024 (HRA, GLUE: "
               "5e-4..2e-3)"),
    PeftMethod(name="road", label="RoAd", peft_type="ROAD", config=("tuners/road/config.py", "RoadConfig"),
               sized=("group_size", 64), merges=True, on_four_bit=True,
               trains="2-D rotations of each target layer's outputs, and the head", default_lr=1e-3,
               lr_range=(1e-4, 1e-2), lr_source=UNPUBLISHED),
)
