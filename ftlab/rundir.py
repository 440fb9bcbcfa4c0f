"""Where a run writes: --output_dir, or a default named after dataset, method and the SLURM job or start time."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from ftlab.config import Config


def dataset_label(cfg: Config) -> str:
    """The dataset as a directory-name part: a local file's stem, else the name with '/' replaced."""
    dataset = Path(cfg.data.dataset).stem if Path(cfg.data.dataset).exists() else cfg.data.dataset
    return dataset.replace("/", "_")


def _run_stem(cfg: Config, method: str) -> str:
    return str(Path("runs") / f"{dataset_label(cfg)}-{method}")


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
    return f"{job_dir}-{started}" if (Path(job_dir) / "result.json").exists() else job_dir


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
