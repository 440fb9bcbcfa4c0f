"""The rules a configuration's values must keep, alone and together. Only the values are looked at: what needs
the file system, a dataset or a model (does the directory hold a finished run, is the model's config readable)
is the run plan's pre-flight (ftlab.runs.plan). Light: the standard library only."""
from __future__ import annotations

from typing import Iterable

from ftlab.config.schema import FIELDS, LORA_METHODS, LORA_SWITCHES, Config, MethodArgs, RunArgs
from ftlab.errors import ConfigError


# Which method reads which flag, for now in this one place: the LoRA flags change nothing for the other methods.
# (To be replaced by what each method declares, once methods have a registry.)
LORA_FLAGS = (*(name for name in FIELDS if name.startswith("lora_")), "use_rslora", "use_dora")


def unused_flags(method: str, names: Iterable[str]) -> list[str]:
    """The flags among `names` that `method` does not read."""
    return [name for name in names if name in LORA_FLAGS and method not in LORA_METHODS]


def validate(cfg: Config) -> Config:
    """Check every value against its field's rule; name the bad value and what is allowed."""
    for name, (group, f) in FIELDS.items():
        value = getattr(getattr(cfg, group), name)
        check = f.metadata["check"]
        if value is None and not str(f.type).startswith("Optional"):
            raise ConfigError(f"--{name}: a value is required ({f.metadata['allowed']})")
        if check is not None and value is not None and not check(value):
            raise ConfigError(f"--{name} {value}: must be {f.metadata['allowed']}")
    _check_method(cfg.method)
    if cfg.optim.cycle_momentum and (cfg.optim.scheduler != "onecycle" or (
            cfg.optim.optimizer in ("sgd", "sgd_nesterov") and cfg.optim.momentum == 0)):
        raise ConfigError("--cycle_momentum needs --scheduler onecycle and an optimizer with momentum "
                          "(Adam's beta1, or SGD with --momentum > 0)")
    if cfg.optim.optimizer == "sgd_nesterov" and cfg.optim.momentum == 0:
        raise ConfigError("--optimizer sgd_nesterov needs --momentum > 0")
    _check_checkpoints(cfg.run)
    return cfg


def _check_checkpoints(args: RunArgs) -> None:
    if (args.load_best or args.early_stopping_patience) and args.save_steps and args.eval_steps \
            and args.save_steps % args.eval_steps:
        raise ConfigError(f"--save_steps {args.save_steps} must be a multiple of --eval_steps {args.eval_steps} "
                          f"with --load_best or early stopping (the best checkpoint must have been evaluated)")


def _check_method(args: MethodArgs) -> None:
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
