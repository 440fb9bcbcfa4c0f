"""The rules a configuration's values must keep, alone and together. Only the values are looked at: what needs
the file system, a dataset or a model (does the directory hold a finished run, is the model's config readable)
is the run plan's pre-flight (ftlab.runs.plan). Light: the standard library only."""
from __future__ import annotations

from typing import Iterable

from ftlab import methods, tasks
from ftlab.config.schema import FIELDS, Config, MethodArgs, RunArgs
from ftlab.errors import ConfigError
from ftlab.methods.base import TARGET_FLAGS


def unused_flags(method: str, names: Iterable[str]) -> list[str]:
    """The method flags among `names` that `method` does not read (ftlab.methods: each method declares its own)."""
    reader, owners = methods.get(method), methods.flag_owners()
    return [name for name in names if name in owners and not reader.reads(name)]


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
    if cfg.task.problem_type is not None:
        check_task_flags(cfg, cfg.task.problem_type, "--problem_type")
    return cfg


def check_task_flags(cfg: Config, problem_type: str, how: str) -> None:
    """The task flags that do not fit the task, in one line; `how` says how the task was decided ("--problem_type",
    or the inference's reason). Checked with the values where --problem_type is given, else once the label column
    has decided the task (ftlab.data.labels), still before the model loads."""
    task = tasks.get(problem_type)
    args = cfg.task
    if args.class_weights != "none" and problem_type == tasks.REGRESSION:
        raise ConfigError(f"--class_weights {args.class_weights}: a regression has no classes to weigh ({how}); "
                          f"use it with single_label or multi_label")
    if args.label_scaling and problem_type != tasks.REGRESSION:
        raise ConfigError(f"--label_scaling: only a regression's targets are scaled, this run is {task.short} "
                          f"({how})")
    if args.threshold is not None and problem_type != tasks.MULTI_LABEL:
        raise ConfigError(f"--threshold {args.threshold:g}: only multi-label runs threshold their labels, this run is "
                          f"{task.short} ({how})")
    metric = cfg.run.metric_for_best
    if metric is not None and metric not in task.metrics:
        raise ConfigError(f"--metric_for_best {metric}: not a {task.short} metric ({how}); use one of "
                          f"{', '.join(task.metrics)}")


def _check_checkpoints(args: RunArgs) -> None:
    if (args.load_best or args.early_stopping_patience) and args.save_steps and args.eval_steps \
            and args.save_steps % args.eval_steps:
        raise ConfigError(f"--save_steps {args.save_steps} must be a multiple of --eval_steps {args.eval_steps} "
                          f"with --load_best or early stopping (the best checkpoint must have been evaluated)")


def _check_method(args: MethodArgs) -> None:
    method = methods.get(args.method)
    if method.reads("lora_query") and not args.lora_target_modules and not any(
            getattr(args, flag) for flag in TARGET_FLAGS if flag != "lora_target_modules"):
        raise ConfigError(f"--method {method.name}: no target: every --lora_<module> switch is off; turn one on or "
                          f"pass --lora_target_modules")
    if args.save_adapter and not method.adapter:
        raise ConfigError(f"--save_adapter needs a method that trains a PEFT adapter, not --method {method.name}"
                          + (" (use --merge)" if method.merges else ""))
    if args.merge and not method.merges:
        raise ConfigError(f"--merge: --method {method.name} cannot be merged into a plain checkpoint"
                          + (" (use --save_adapter)" if method.adapter else ""))
    method.check_args(args)


def check_flags_for_methods(names: list[str], typed: set[str], command: str) -> None:
    """For a command that runs several methods on one set of flags (curve, bench): each typed method flag must be
    read by one of them at least (each run then gets the flags its method reads)."""
    owners = methods.flag_owners()
    for flag in sorted(typed & set(owners)):
        if not any(methods.get(name).reads(flag) for name in names):
            raise ConfigError(f"--{flag}: none of {command}'s methods ({', '.join(names)}) has it (it is for "
                              f"{', '.join(owners[flag][:6])}{', ...' if len(owners[flag]) > 6 else ''})")


def settle_method_flags(cfg: Config, typed: set[str], given: set[str], foreign: str = "error") -> None:
    """The method flags as the chosen method reads them. A flag it reads that nobody set (`given`: flags and file
    keys) takes the method's own default (VeRA's rank 256). A flag it does not read is an error when typed on the
    command line (`typed`; foreign="ignore" for commands that pass one set of flags to several methods), and is in
    every case reset to its default, so that the saved configuration and the configuration's group say what ran."""
    method = methods.get(cfg.method.method)
    owners = methods.flag_owners()
    for flag in sorted(owners):
        if method.reads(flag):
            if flag not in given:
                setattr(cfg.method, flag, method.default(flag, FIELDS[flag][1].default))
            continue
        if flag in typed and foreign == "error":
            kind = "target" if flag in TARGET_FLAGS else "flag"
            readers = ", ".join(owners[flag][:6]) + (", ..." if len(owners[flag]) > 6 else "")
            raise ConfigError(f"--{flag}: --method {method.name} has no such {kind} (it is for {readers})")
        field = FIELDS[flag][1]
        setattr(cfg.method, flag, field.default)
