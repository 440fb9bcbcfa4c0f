"""The run plan: what a command line asks to run, checked before anything heavy loads.

One function, plan_run, serves every command that trains (train, search's trials, bench): the configuration from
flags and file (ftlab.config), then the pre-flight that needs more than the values: the dataset's name, the
model's directory and config, each seed's run directory (finished already? the adapter to load there?) and whether
--resume may continue what that directory holds. Light: no torch, transformers or datasets.
"""
from __future__ import annotations

import copy
from pathlib import Path

from ftlab.config import Config, parse_config
from ftlab.data.registry import check_dataset_name
from ftlab.errors import ConfigError
from ftlab.models.sources import check_model_before_loading
from ftlab.runs.directory import check_output_dir
from ftlab.runs.record import has_record
from ftlab.runs.resume import check_resume
from ftlab.runtime import gpu_present


def plan_run(argv: list[str], foreign_flags: str = "error") -> Config:
    """The validated configuration of `argv`, its pre-flight passed for every run it stands for. foreign_flags:
    "ignore" where one set of flags serves several methods (ftlab.config.parse.parse_config)."""
    cfg = parse_config(argv, foreign_flags)
    for flag, directory in (("--output_dir", cfg.run.output_dir), ("--save_adapter", cfg.method.save_adapter)):
        if directory:
            check_output_dir(directory, flag)
    check_precision_device(cfg.speed.precision)
    check_dataset_name(cfg.data.dataset)
    check_model_before_loading(cfg.model.model, cfg.data.max_length)
    runs = expand_seeds(cfg)  # each seed of --seeds is a run of its own, in its own directory
    for run in runs:
        _check_run_directory(run)
        if run.method.load_adapter and not (Path(run.method.load_adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"--load_adapter {cfg.method.load_adapter}: no adapter_config.json there"
                              + (f" (nor in its seed{run.run.seed}/)" if cfg.run.seeds else ""))
    for run in runs:  # every directory checked before any resume check, as one flag error comes first
        check_resume(run)
    return cfg


def check_precision_device(precision: str) -> None:
    """fp16 autocast needs a CUDA GPU: said now, from the devices the system lists, rather than after torch and
    the model load (ftlab.training.speed.resolve_precision checks it again with torch)."""
    if precision == "fp16" and not gpu_present():
        raise ConfigError("--precision fp16: mixed precision with fp16 needs a CUDA GPU, and this machine shows none; "
                          "use fp32, bf16 or auto on CPU")


def _check_run_directory(cfg: Config) -> None:
    args = cfg.run
    if args.output_dir and not args.overwrite_output_dir and not args.resume and has_record(args.output_dir):
        raise ConfigError(f"--output_dir {args.output_dir} already holds a finished run (result.json); choose "
                          f"another directory or pass --overwrite_output_dir")


def expand_seeds(cfg: Config) -> list[Config]:
    """The runs a config stands for: itself, or with --seeds one config per seed, each a plain run (seeds unset)
    in <output_dir>/seed<N>, saving its adapter to <save_adapter>/seed<N> and loading <load_adapter>/seed<N>
    where that holds an adapter (what an earlier --seeds run with --save_adapter wrote), else <load_adapter>.
    An unset output_dir stays unset here; the caller names it first (see ftlab.runs.directory)."""
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
