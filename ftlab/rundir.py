"""Where a run writes: --output_dir, or a default named after dataset, method and start time."""
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


def default_output_dir(cfg: Config, method: str) -> str:
    return str(Path("runs") / f"{dataset_label(cfg)}-{method}-{time.strftime('%Y%m%d-%H%M%S')}")


def resolve_output_dir(cfg: Config, method: Optional[str] = None) -> Path:
    """--output_dir, else runs/<dataset>-<method>-<time>; `method` names runs that are not cfg.method (the baseline)."""
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
