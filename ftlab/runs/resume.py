"""Continuing a run: its newest complete checkpoint, whether this configuration may continue it, and which attempt
this is. Light (no torch), so that --resume is checked with the other flags."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

from ftlab.config import IDENTITY_FIELDS, Config, config_from_record, flatten_sections
from ftlab.errors import ConfigError
from ftlab.runs.directory import default_output_dir, job_output_dir, write_json_atomic

ATTEMPTS_FILE = "attempts.json"


def latest_checkpoint(output_dir: Path) -> Optional[str]:
    """The newest checkpoint that was written completely.

    transformers' get_last_checkpoint takes the highest-numbered directory, but a run killed while saving leaves
    a partial one; the Trainer writes trainer_state.json last, so its presence marks a finished checkpoint (and
    older ones are only rotated away after that).
    """
    complete = [path for path in Path(output_dir).glob("checkpoint-*")
                if path.name.split("-")[-1].isdigit() and (path / "trainer_state.json").is_file()]
    return str(max(complete, key=lambda path: int(path.name.split("-")[-1]))) if complete else None


def _flag(resume: Union[bool, str]) -> str:
    return f"--resume {str(resume).lower()}"


def check_resume(cfg: Config) -> None:
    """--resume true needs a complete checkpoint to continue; true and auto continue only a run of the same
    configuration (its saved config.yaml), so that a changed flag never mixes two runs in one record."""
    resume = cfg.run.resume
    if not resume:
        return
    output_dir = cfg.run.output_dir
    if not output_dir:
        if job_output_dir(cfg, cfg.method.method) is None:
            if resume is True:
                raise ConfigError("--resume needs the --output_dir of the run to continue")
            return  # auto: a new directory named after the start time has nothing to continue
        output_dir = default_output_dir(cfg, cfg.method.method)  # under SLURM: named after the job
    if (Path(output_dir) / "result.json").is_file():
        return  # finished: the command skips it
    if latest_checkpoint(Path(output_dir)) is None:
        if resume is True:
            raise ConfigError(f"--resume: no complete checkpoint-* directory in {output_dir} to continue from")
        return
    _check_same_config(Path(output_dir), cfg)


def _options_to_compare() -> set[str]:
    """The options that make a run what it is: those that can change its model or metrics (ftlab.config's
    `identity`), and the seed, which orders the batches. Where it writes, how often it logs or saves, W&B: those
    may change between attempts."""
    return IDENTITY_FIELDS | {"seed"}


def _check_same_config(output_dir: Path, cfg: Config) -> None:
    import yaml


    try:
        sections = yaml.safe_load((output_dir / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return  # a checkpoint without a readable config (an older run): nothing to compare against
    if not isinstance(sections, dict):
        return
    # Read as the report reads an old record: an option the saved config lacks is what that version ran (the
    # option's legacy value, e.g. cls pooling), so a checkpoint from before it existed is not continued with
    # today's different default.
    saved = flatten_sections(config_from_record(sections).to_dict())
    current = flatten_sections(cfg.to_dict())
    compared = _options_to_compare()
    differing = [key for key in current if key in compared and saved[key] != current[key]]
    if differing:
        key = differing[0]
        more = f" and {len(differing) - 1} more" if len(differing) > 1 else ""
        raise ConfigError(
            f"{_flag(cfg.run.resume)}: {output_dir} holds a checkpoint of a run with another configuration "
            f"(--{key} {saved[key]} there, {current[key]} now{more}); repeat that run's flags "
            f"(--config {output_dir / 'config.yaml'}) or choose another --output_dir")


def count_attempt(output_dir: Path, resume: Union[bool, str]) -> int:
    """This attempt's number, kept in <output_dir>/attempts.json across interruptions: one more than before when
    the run may continue (--resume true or auto; an attempt stopped before its first checkpoint counts too), 1
    when it starts over (--resume false)."""
    path = output_dir / ATTEMPTS_FILE
    before = 0
    if resume and path.is_file():
        try:
            before = int(json.loads(path.read_text(encoding="utf-8"))["attempts"])
        except (ValueError, KeyError, TypeError):  # a damaged file: count from here
            before = 0
    attempts = before + 1
    write_json_atomic(path, {"attempts": attempts})
    return attempts
