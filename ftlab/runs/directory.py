"""A run's directory: where it is (--output_dir, or a default named after dataset, method and the SLURM job or start
time), its short name, and the files written into it atomically (result.json and the experiment's index beside it).
Every output of the package (records, reports, plots, bench and search files) is written through write_atomic."""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ftlab.config import Config
from ftlab.errors import ConfigError
from ftlab.runs.record import RESULT_NAME, has_record

CONFIG_NAME = "config.yaml"  # a run's resolved configuration, written when it starts
RUNS_DIR = "runs"  # where runs go by default, and what `report` reads by default
# Where the commands that drive many runs (search, curve, bench) write by default: outside RUNS_DIR, so that their
# points are not read as configurations of their own by a report of the runs.
STUDIES_DIR = "studies"


def dataset_label(cfg: Config) -> str:
    """The dataset as a directory-name part: a local file's stem, else the name with '/' replaced."""
    dataset = Path(cfg.data.dataset).stem if Path(cfg.data.dataset).exists() else cfg.data.dataset
    return dataset.replace("/", "_")


def _run_stem(cfg: Config, method: str) -> str:
    return str(Path(RUNS_DIR) / f"{dataset_label(cfg)}-{method}")


def job_output_dir(cfg: Config, method: str) -> Optional[str]:
    """Under SLURM, runs/<dataset>-<method>-job<id> (job<array job>_<task> for array tasks): a requeued job keeps
    its id, so every attempt of it writes to, and resumes from, the same directory. None outside SLURM."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    job = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID")
    return f"{_run_stem(cfg, method)}-job{job}" if job else None


def default_output_dir(cfg: Config, method: str) -> str:
    started = time.strftime("%Y%m%d-%H%M%S")
    job_dir = job_output_dir(cfg, method)
    if job_dir is None:
        return f"{_run_stem(cfg, method)}-{started}"
    # A second run of the same dataset and method within one job (an interactive allocation) after the first
    # finished: it must not replace the first one's record.
    return f"{job_dir}-{started}" if has_record(job_dir) else job_dir


def resolve_output_dir(cfg: Config, method: Optional[str] = None) -> Path:
    """--output_dir, else the default above; `method` names runs that are not cfg.method (the baseline)."""
    output_dir = cfg.run.output_dir
    if not output_dir:
        output_dir = default_output_dir(cfg, method or cfg.method.method)
        if "WORLD_SIZE" in os.environ:
            # One of several processes: all take the main one's name (their clocks may be a second apart). Only
            # here, so that the baseline does not import torch just to name its directory.
            from ftlab.distributed import main_process_value

            output_dir = main_process_value(output_dir)
    output_dir = Path(output_dir)
    cfg.run.output_dir = str(output_dir)
    return output_dir


def check_output_dir(path: Any, flag: str = "--output_dir") -> None:
    """A directory a command will write into: refused at once where it, or a directory above it, is a file (else
    the first write, minutes later, fails with FileExistsError)."""
    given = Path(path)
    for candidate in (given, *given.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == given else f" ({candidate} is one)"
                raise ConfigError(f"{flag} {path}: a file, not a directory{where}; name a directory to write into")
            return


def run_name(output_dir: str) -> str:
    """A run's short name: its directory's name; for a seed's directory (seed<N>) with its parent's: lora/seed2."""
    path = Path(output_dir)
    is_seed_dir = path.name.startswith("seed") and path.name[4:].isdigit()
    return f"{path.parent.name}/{path.name}" if is_seed_dir else path.name


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` fills a temporary file beside the target, which is then renamed to it: readers (another
    worker, a report) never see a half-written file, and concurrent writers (one per process) each leave a whole
    one. The file gets the permissions of any new file (the umask's), which mkstemp's private 0600 would not."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: Path, payload: Any) -> Path:
    """The record (or any JSON) written atomically (write_atomic)."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n",
                                                         encoding="utf-8"))


INDEX_NAME = "index.jsonl"


def save_record(output_dir: Path, record: dict[str, Any]) -> Path:
    """The record (RESULT_NAME) in the run's directory, and one line in the experiment's index (the run
    directory's parent).

    The index lets a sweep be read in one pass and survives runs whose directories are later pruned. The lock
    keeps lines whole when array jobs of one sweep finish at the same moment.
    """
    path = write_json_atomic(output_dir / RESULT_NAME, record)
    line = json.dumps(record, sort_keys=False, separators=(",", ":")) + "\n"
    with open(output_dir.parent / INDEX_NAME, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(line)
    return path
