"""`main.py [train] [flags]`: fine-tune a model; with --seeds, once per seed, one after the other in this process,
each a run of its own in <output_dir>/seed<N>."""
from __future__ import annotations

from ftlab import methods
from ftlab.commands.job import Job
from ftlab.config import Config, OneLineParser, build_parser as train_parser
from ftlab.console import say
from ftlab.runs.plan import expand_seeds, plan_run
from ftlab.runs.record import has_record

NAME = "train"
SUMMARY = "Fine-tune a model on a dataset (the default command: `main.py [flags]` trains)."


def build_parser(prog: str = "main.py") -> OneLineParser:
    return train_parser(prog, usage=f"{prog} [{NAME}] [flags]")


def prepare(argv: list[str]) -> Job:
    cfg = plan_run(argv)
    return Job(run=lambda stop: train(cfg), four_bit=methods.get(cfg.method.method).four_bit_base,
               verbose=cfg.run.verbose,
               tracking=cfg.tracking.wandb_mode != "disabled", trains=True,
               continue_hint=lambda: f"continue with the same flags and --resume auto --output_dir "
                                     f"{cfg.run.output_dir}")


def train(cfg: Config) -> int:
    from ftlab.runs.directory import resolve_output_dir
    from ftlab.training.run import run_training

    if cfg.run.seeds:
        resolve_output_dir(cfg)  # one default name for all seeds: <output_dir>/seed<N>
    for run in expand_seeds(cfg):
        # The plan (ftlab.runs.resume.check_resume) refused a finished run of another configuration.
        if run.run.resume and run.run.output_dir and has_record(run.run.output_dir):
            say(f"{run.run.output_dir}: finished before (result.json), skipped")
            continue
        run_training(run)
    return 0

