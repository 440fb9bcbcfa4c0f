"""LoRA through PEFT (Hu et al. 2021), and QLoRA: LoRA on a base model loaded in 4-bit nf4 (Dettmers et al. 2023).

Beside rank, alpha, dropout and targets: rsLoRA's scaling, DoRA, LoRA+'s faster learning rate for B (through
peft's create_loraplus_optimizer) and the initialisations PEFT ships (--lora_init): PEFT's default (Kaiming-uniform A,
zero B), gaussian, PiSSA and OLoRA (from the base weights' SVD / QR), EVA and CorDA (from the run's training batches)
and LoftQ (against the 4-bit quantisation error of a QLoRA base).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from ftlab.errors import ConfigError
from ftlab.methods.base import TARGET_FLAGS, ApplyContext, Method
from ftlab.methods.targets import Targets, resolve_targets

DEFAULT_INIT = "kaiming"  # PEFT's init_lora_weights=True
# --lora_init -> PEFT's init_lora_weights
INITS = {"kaiming": True, "gaussian": "gaussian", "pissa": "pissa", "olora": "olora", "eva": "eva",
         "corda": "corda", "loftq": "loftq"}
PISSA_FAST = re.compile(r"pissa_niter_[1-9][0-9]*")  # PiSSA with a randomised SVD of N subspace iterations
# Initialisations that rewrite the base weights (W - BA stays behind): a saved adapter is converted back to one for
# the untouched base (PEFT's path_initial_model_for_weight_conversion).
RESIDUAL_INITS = ("pissa", "olora", "corda")
INITIAL_ADAPTER = "initial_adapter"  # in the run directory: the adapter as initialised, for that conversion
LORA_FLAGS = ("lora_r", "lora_alpha", "lora_dropout", *TARGET_FLAGS, "use_rslora", "use_dora", "lora_init",
              "loraplus_lr_ratio", "peft_args")


def valid_init(value: str) -> bool:
    return value in INITS or bool(PISSA_FAST.fullmatch(value))


def _init_weights(init: str) -> Any:
    return INITS.get(init, init)  # pissa_niter_N is PEFT's own spelling


def uses_conv1d(model: Any, modules: list[str]) -> bool:
    """Whether the targets include transformers' Conv1D layers (GPT-2), whose weight is stored transposed."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(model.get_submodule(name), Conv1D) for name in modules)


@contextmanager
def exact_targets() -> Iterator[None]:
    """PEFT as told: the targets of a LoRA config are applied (and an adapter loaded) as they are named.

    peft 0.21 rewrites a LoRA config's targets for the families whose checkpoints transformers 5 converts (Mixtral,
    Qwen3-MoE, DeepSeek-V3, ...), for adapters trained under transformers 4: every gate_proj, up_proj and down_proj
    becomes the fused expert parameters and `gate` the router, so DeepSeek-V3's dense MLP and shared experts lose
    their adapters. The lab's configs name transformers 5's modules and parameters already (the expert stacks in
    target_parameters), so the rewrite is switched off while they are applied or loaded."""
    from peft.utils import transformers_weight_conversion as conversion

    original = conversion.convert_peft_config_for_transformers
    conversion.convert_peft_config_for_transformers = lambda *args, **kwargs: None
    try:
        yield
    finally:
        conversion.convert_peft_config_for_transformers = original


def lora_config(model: Any, args: Any, context: ApplyContext, targets: Targets) -> Any:
    from peft import LoraConfig, TaskType

    extra: dict[str, Any] = dict(args.peft_args or {})
    if args.lora_init == "eva":
        from peft import EvaConfig

        extra.setdefault("eva_config", EvaConfig())
    elif args.lora_init == "corda":
        from peft.tuners.lora.config import CordaConfig

        extra.setdefault("corda_config", CordaConfig())
    # With --lora_head the head gets adapters instead of full training. The SEQ_CLS task type would add the
    # classifier to modules_to_save behind our back, so it is left out then.
    try:
        return LoraConfig(task_type=None if args.lora_head else TaskType.SEQ_CLS, r=args.lora_r,
                          lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          target_modules=targets.pattern or [],
                          # Mixture-of-experts' expert stacks: 3-D parameters, adapted per expert.
                          target_parameters=targets.parameters or None,
                          modules_to_save=None if args.lora_head else list(context.arch.head),
                          # GPT-2's Conv1D stores its weight transposed (in x out): PEFT's switch for it.
                          fan_in_fan_out=uses_conv1d(model, targets.modules), use_rslora=args.use_rslora,
                          use_dora=args.use_dora, init_lora_weights=_init_weights(args.lora_init), **extra)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--method lora: PEFT refuses the configuration: {str(exc).splitlines()[0]}") from None


def _residual(args: Any) -> bool:
    return args.lora_init.split("_niter_")[0] in RESIDUAL_INITS


def _batches_without_labels(context: ApplyContext) -> list[dict]:
    if context.batches is None:
        raise ConfigError("--lora_init eva/corda initialises from the training batches: only a training run has them")
    return [{key: value for key, value in batch.items() if key != "labels"} for batch in context.batches()]


@dataclass(frozen=True)
class Lora(Method):
    def check(self, model: Any, args: Any, arch: Any) -> None:
        targets = resolve_targets(model, arch, args, self.name, experts=True)
        if targets.parameters:
            # PEFT's LoRA on a parameter (lora.ParamWrapper) adds B A to the weight itself: an input dropout cannot
            # be factored out of that, and neither DoRA nor the initialisations from the weights' decompositions
            # or from data know a stack of experts.
            experts = f"{arch.model_type}'s expert stacks ({', '.join(sorted(set(arch.experts)))})"
            fix = "or --lora_mlp false to leave the experts out"
            if args.lora_dropout:
                raise ConfigError(f"--lora_dropout {args.lora_dropout:g}: PEFT's LoRA on {experts} takes no dropout; "
                                  f"use --lora_dropout 0, {fix}")
            if args.use_dora:
                raise ConfigError(f"--use_dora: PEFT has no DoRA for {experts}; drop --use_dora, {fix}")
            if args.lora_init not in ("kaiming", "gaussian"):
                raise ConfigError(f"--lora_init {args.lora_init}: PEFT initialises LoRA on {experts} only randomly; "
                                  f"use --lora_init kaiming or gaussian, {fix}")

    def check_args(self, args: Any) -> None:
        base = args.lora_init.split("_niter_")[0]
        if args.lora_init == "loftq" and not self.four_bit_base:
            raise ConfigError("--lora_init loftq fits LoRA to a 4-bit base's quantisation error: use --method qlora")
        if base in RESIDUAL_INITS + ("eva",) and self.four_bit_base:
            raise ConfigError(f"--lora_init {args.lora_init}: not on a 4-bit base; use --method lora, or --lora_init "
                              f"loftq with qlora")
        if args.use_dora and args.lora_init != DEFAULT_INIT:
            raise ConfigError(f"--use_dora with --lora_init {args.lora_init}: PEFT initialises DoRA's magnitude from the "
                              f"default initialisation only; drop one")

    def prepare(self, model: Any) -> Any:
        return model

    def apply(self, model: Any, args: Any, context: ApplyContext) -> Any:
        from peft import get_peft_model

        model = self.prepare(model)
        config = lora_config(model, args, context, resolve_targets(model, context.arch, args, self.name, experts=True))
        if args.lora_init == "corda":
            from peft.tuners.lora.corda import preprocess_corda

            # peft's CorDA hook reads one text per forward pass (it squeezes the batch dimension): each text alone,
            # its padding cut off.
            texts = [{key: value[row:row + 1, batch["attention_mask"][row].bool()] for key, value in batch.items()}
                     for batch in _batches_without_labels(context) for row in range(len(batch["input_ids"]))]
            preprocess_corda(model, config, run_model=lambda: [model(**text) for text in texts])
        with exact_targets():
            peft_model = get_peft_model(model, config)
        if args.lora_init == "eva":
            from peft import initialize_lora_eva_weights

            initialize_lora_eva_weights(peft_model, dataloader=_batches_without_labels(context),
                                        show_progress_bar=False)
        elif args.lora_init == "loftq":
            from peft import replace_lora_weights_loftq

            weights = Path(context.model_location or "") / "model.safetensors"
            if not weights.is_file():
                raise ConfigError(f"--lora_init loftq reads the base weights from a single model.safetensors file; "
                                  f"{context.model_location} has none")
            replace_lora_weights_loftq(peft_model, model_path=str(weights))
        if _residual(args) and context.run_dir is not None and not (context.run_dir / INITIAL_ADAPTER).is_dir():
            # Keep the adapter as initialised (before any step), so that the trained one can be saved as an adapter
            # for the original base; it loads as is, without being initialised again.
            config = peft_model.peft_config["default"]
            init, config.init_lora_weights = config.init_lora_weights, True
            peft_model.save_pretrained(context.run_dir / INITIAL_ADAPTER)
            config.init_lora_weights = init
        return peft_model

    def load(self, model: Any, adapter_dir: str, trainable: bool = False) -> Any:
        with exact_targets():
            return super().load(model, adapter_dir, trainable)

    def save_adapter(self, model: Any, args: Any, target: Path, run_dir: Path) -> None:
        initial = run_dir / INITIAL_ADAPTER
        if _residual(args) and initial.is_dir():
            from peft import get_peft_model_state_dict
            from safetensors.torch import load_file, save_file

            model.save_pretrained(target, path_initial_model_for_weight_conversion=str(initial))
            # peft 0.21's conversion writes the converted LoRA matrices only, without the head trained in full
            # (modules_to_save), which the adapter then lacks: added from the trained model's own state.
            head = {key: value for key, value in get_peft_model_state_dict(model).items() if "lora_" not in key}
            weights = target / "adapter_model.safetensors"
            save_file({**load_file(weights), **head}, weights, metadata={"format": "pt"})
        else:
            model.save_pretrained(target)

    def optimizer(self, model: Any, args: Any, optimizer_cls: type, optimizer_kwargs: dict) -> Any:
        if not args.loraplus_lr_ratio:
            return None
        from peft.optimizers import create_loraplus_optimizer

        # B's learning rate is loraplus_lr_ratio times A's; the head (trained in full) keeps A's, as in peft.
        return create_loraplus_optimizer(model, optimizer_cls, loraplus_lr_ratio=args.loraplus_lr_ratio,
                                         loraplus_weight_decay=optimizer_kwargs.get("weight_decay", 0.0),
                                         **optimizer_kwargs)

    def describe(self, args: Mapping[str, Any]) -> str:
        label = f"{self.name} r={args['lora_r']} α={args['lora_alpha']:g}"
        extras = [args.get("lora_init") if args.get("lora_init", DEFAULT_INIT) != DEFAULT_INIT else None,
                  "DoRA" if args.get("use_dora") else None, "rsLoRA" if args.get("use_rslora") else None,
                  f"LoRA+ ×{args['loraplus_lr_ratio']:g}" if args.get("loraplus_lr_ratio") else None]
        return " ".join([label, *filter(None, extras)])


@dataclass(frozen=True)
class QLora(Lora):
    def check(self, model: Any, args: Any, arch: Any) -> None:
        import torch

        super().check(model, args, arch)
        # transformers' 4-bit loading replaces layers of exactly these classes (its replace_with_bnb_linear); on the
        # loaded base they are bitsandbytes' Linear4bit.
        kinds = {type(model.get_submodule(path)) for path in arch.body_linears}
        if kinds and not {kind for kind in kinds
                          if kind is torch.nn.Linear or kind.__name__ in ("Conv1D", "Linear4bit")}:
            names = ", ".join(sorted(kind.__name__ for kind in kinds))
            raise ConfigError(f"--method {self.name}: transformers' 4-bit loading quantises plain torch.nn.Linear "
                              f"layers only, and {arch.model_type}'s are {names}: the base would stay in full "
                              f"precision; use --method lora")

    def prepare(self, model: Any) -> Any:
        from peft import prepare_model_for_kbit_training

        # Gradient checkpointing is a separate memory/speed trade-off, not part of QLoRA itself.
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)

    def continue_from(self, model: Any, adapter_dir: str, args: Any) -> Any:
        return super().continue_from(self.prepare(model), adapter_dir, args)

    def merge(self, model: Any) -> Any:
        """A QLoRA model merged in full precision, loadable without bitsandbytes.

        PEFT's merge into a 4-bit layer dequantises W, adds the LoRA update and quantises W + ΔW again, so the
        exported model loses most of ΔW to the 4-bit grid (its predictions no longer matched the run's). Instead the
        base is dequantised first and the same adapter weights (LoRA matrices and the trained head) are merged into
        it by PEFT's ordinary full-precision merge."""
        from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

        adapter_config = model.peft_config[model.active_adapter]
        trained = get_peft_model_state_dict(model)
        base = model.unload().dequantize()  # the untouched 4-bit base weights, dequantised; the head as trained
        with exact_targets():
            plain = get_peft_model(base, adapter_config)
        set_peft_model_state_dict(plain, trained)
        return plain.merge_and_unload()


def skip_adapter_input_casts(model: Any, precision: str) -> int:
    """Under autocast (bf16, fp16), stop PEFT's LoRA layers from casting each adapter's input to the adapters'
    fp32 weight dtype; the number of layers switched.

    Autocast casts that input straight back to bf16 for the adapter's matmul, so the cast is two full-size copies
    of the activation per adapter, forward and backward, that change no bit of the result (tests/test_speed.py
    checks that losses and gradients are identical). Only the attention output and MLP down projections read bf16
    activations (the others read the fp32 residual stream, where the cast is a no-op), but the MLP's are the widest
    ones, so a LoRA step gets measurably faster (docs/studies/speed.md). Without autocast (fp32) the cast is PEFT's
    safeguard for base models stored in another dtype, so it stays; DoRA layers keep it too (their variant does
    more with the input than a matmul). Other PEFT tuners are left as they are."""
    if precision not in ("bf16", "fp16"):
        return 0
    from peft.tuners.lora import LoraLayer

    layers = [module for module in model.modules()
              if isinstance(module, LoraLayer) and not getattr(module, "lora_variant", None)]
    for layer in layers:
        layer.cast_input_dtype_enabled = False
    return len(layers)


_LORA = dict(flags=LORA_FLAGS, peft_type="LORA", default_lr=5e-4, lr_range=(5e-5, 5e-3), adapter=True, merges=True,
             on_four_bit=True, search_space={"lora_r": "4,8,16,32", "lora_alpha": "8..64:log"},
             lr_source="the lab's measurement on IMDB with MiniLM (docs: how the CPU defaults were chosen); about "
                       "10x full fine-tuning's, as in 'LoRA Without Regret' (Thinking Machines 2025)")
METHODS = (
    Lora(name="lora", label="LoRA", legacy_flag="lora",
         trains="rank-r adapters on the target layers (default: query, key, value, attention output and MLP of "
                "every block, an encoder-decoder's encoder and decoder blocks and a mixture of experts' expert "
                "stacks included; routers are left alone), and the head", **_LORA),
    QLora(name="qlora", label="QLoRA", legacy_flag="q_lora", four_bit_base=True,
          trains="as lora, on a base loaded in 4-bit nf4 (bitsandbytes); the head stays unquantised, and on a CPU "
                 "so do the layers bitsandbytes' kernel cannot hold (outputs not a multiple of 32 or inputs of 64; "
                 "the record lists them)",
          **{**_LORA, "flags": (*LORA_FLAGS, "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                                "bnb_4bit_compute_dtype")}),
)
