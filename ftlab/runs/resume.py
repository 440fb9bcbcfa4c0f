"""Continuing a run: its newest complete checkpoint, whether this configuration may continue it, and which attempt
this is. Light (no torch), so that --resume is checked with the other flags."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional, Union

from ftlab.config import IDENTITY_FIELDS, Config, config_from_record, flatten_sections
from ftlab.errors import ConfigError, DataError
from ftlab.runs.directory import CONFIG_NAME, default_output_dir, job_output_dir, write_json_atomic
from ftlab.runs.record import RESULT_NAME, has_record, read_json_file

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
    if has_record(output_dir):
        # Finished: the command skips it, but only as the same configuration; another one would be said to be
        # done while nothing of it ran.
        _check_same_config(Path(output_dir), cfg, finished=True)
        return
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


def _saved_sections(output_dir: Path, finished: bool) -> Optional[dict]:
    """The configuration the run in output_dir was started with: its record's (a finished run; the baseline
    writes no config.yaml), else its config.yaml; None where there is none to read (an older run)."""
    import yaml

    if finished:
        try:
            sections = read_json_file(output_dir / RESULT_NAME).get("config")
        except (DataError, AttributeError):
            sections = None
        if isinstance(sections, dict):
            return sections
    try:
        sections = yaml.safe_load((output_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return sections if isinstance(sections, dict) else None


def _check_same_config(output_dir: Path, cfg: Config, finished: bool = False) -> None:
    sections = _saved_sections(output_dir, finished)
    if sections is None:
        return  # nothing to compare against
    # Read as the report reads an old record: an option the saved config lacks is what that version ran (the
    # option's legacy value, e.g. cls pooling), so a checkpoint from before it existed is not continued with
    # today's different default.
    saved = flatten_sections(config_from_record(sections).to_dict())
    current = flatten_sections(cfg.to_dict())
    compared = _options_to_compare()
    differing = [key for key in current if key in compared and saved[key] != current[key]]
    if not differing:
        return
    key = differing[0]
    more = f" and {len(differing) - 1} more" if len(differing) > 1 else ""
    found = f"{output_dir} holds a {'finished run' if finished else 'checkpoint of a run'} with another " \
            f"configuration (--{key} {saved[key]} there, {current[key]} now{more})"
    if finished:
        raise ConfigError(f"{_flag(cfg.run.resume)}: {found}, so it is not the run asked for and would be skipped; "
                          f"choose another --output_dir, or drop --resume and pass --overwrite_output_dir to "
                          f"replace it")
    raise ConfigError(f"{_flag(cfg.run.resume)}: {found}; repeat that run's flags (--config "
                      f"{output_dir / CONFIG_NAME}) or choose another --output_dir")


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


def prune_checkpoints(output_dir: Path, keep: str, tested: Optional[str] = None) -> list[Path]:
    """A finished run's checkpoints after --keep_checkpoints: all of them, the one whose model was tested (`tested`,
    the best with --load_best; else the newest, which holds the final model), or none (the run's model for predict
    is saved apart, without optimizer state: ftlab.models.export). Returns the deleted directories."""
    if keep == "all":
        return []
    kept = Path(tested or latest_checkpoint(output_dir) or "") if keep == "best" else None
    deleted = [path for path in Path(output_dir).glob("checkpoint-*") if path.is_dir() and path != kept]
    for path in deleted:
        shutil.rmtree(path)
    return deleted
