"""The run record: one self-describing dict per run (fine-tuning or the SVM baseline), built here in one place, saved
as result.json (ftlab.runs.directory.save_record; read back as ftlab.runs.record.RunRecord), and its console
summary."""
from __future__ import annotations

import os
import platform
import resource
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from ftlab import tasks
from ftlab.config import Config
from ftlab.console import short_path, wrap
from ftlab.runs.directory import save_record
from ftlab.runs.record import RESULT_NAME


def peak_rss_mb() -> float:
    """The process's peak resident set in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_device() -> str:
    return f"cpu ({os.cpu_count()} cores)"


def environment(device: Optional[str] = None) -> dict[str, Any]:
    """Library versions (read from package metadata: importing torch just to name it costs seconds) and the
    device, asked of torch unless the caller knows it (the SVM baseline runs on the CPU)."""
    if device is None:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_device()
    versions = {name: metadata.version(name)
                for name in ("torch", "transformers", "peft", "datasets", "scikit-learn")}
    return {"python": platform.python_version(), **versions, "device": device, "platform": platform.platform()}


def data_summary(data: Any) -> dict[str, Any]:
    return {"origin": data.origin, "sizes": data.sizes(), "label_names": data.label_names,
            "test_is_validation": data.test_is_validation, "notes": data.notes, "pairs": data.has_pairs}


def task_summary(data: Any) -> dict[str, Any]:
    """The record's `task`: what the run was and why (ftlab.data.labels.TaskDecision), with its class weights."""
    return {**data.task.as_record(), "class_weights": data.class_weights}


# The metrics the console summary shows per task, with their column widths.
SUMMARY_COLUMNS = {tasks.SINGLE_LABEL: (("accuracy", 10), ("precision", 11), ("recall", 8), ("f1", 8)),
                   tasks.MULTI_LABEL: (("samples_f1", 12), ("micro_f1", 10), ("macro_f1", 10),
                                       ("subset_accuracy", 17)),
                   tasks.REGRESSION: (("mse", 10), ("mae", 10), ("pearson", 10), ("spearman", 10))}


def format_summary(record: dict[str, Any]) -> str:
    """What the run scored and cost, for the console: lines of at most console.WIDTH columns."""
    cfg = record["config"]
    header = f"{record['method']} | {record['model']} | {cfg['data']['dataset']}"
    params = (f"trainable {record['trainable_params']:,} of {record['total_params']:,} parameters "
              f"({record['trainable_percent']:.2f}%)")
    shown = SUMMARY_COLUMNS[tasks.of_record(record).problem_type]
    rows = [f"{'split':<11}{'n':>7}" + "".join(f"{name:>{width}}" for name, width in shown)]
    for split, m in record["metrics"].items():
        rows.append(f"{split:<11}{m['num_samples']:>7}" + "".join(f"{m.get(name, float('nan')):>{width}.4f}"
                                                                 for name, width in shown))
    tokens = record["train_tokens_per_second"]  # None where tokens mean nothing (the TF-IDF baseline)
    footer = (f"train {record['train_seconds']:.1f} s, {record['train_samples_per_second']:.1f} samples/s, "
              f"{'n/a' if tokens is None else format(tokens, '.0f')} tokens/s, "
              f"peak memory {record['peak_memory_mb']:.0f} MB")
    lines = [header, params, *rows, footer]
    if record.get("collapse"):
        lines.append(f"COLLAPSED: {record['collapse']}")
    lines.append(f"record: {short_path(Path(record['output_dir']) / RESULT_NAME)}")
    return "\n".join(wrap(line) for line in lines)


def build_record(cfg: Config, *, method: str, model: str, group: str, output_dir: Path, data: Any,
                 metrics: dict[str, Any], predictions: dict[str, Any], trainable_params: int, total_params: int,
                 trainable_percent: float, train_seconds: float, train_samples_per_second: float,
                 train_tokens_per_second: Optional[float], peak_memory_mb: float, loss_history: list[Any],
                 environment: dict[str, Any], eval_only: bool, **details: Any) -> dict[str, Any]:
    """The fields every record has (what the report, the search and the comparisons read), then the run's own
    `details` (pooling, precision, checkpoints ... for fine-tuning), then the environment last."""
    return {
        "method": method,
        "model": model,
        "eval_only": eval_only,
        "seed": cfg.run.seed,
        "group": group,
        "config": cfg.to_dict(),
        "output_dir": str(output_dir),
        "data": data_summary(data),
        "task": task_summary(data),
        "metrics": metrics,
        "predictions": predictions,
        "trainable_params": trainable_params,
        "total_params": total_params,
        "trainable_percent": trainable_percent,
        "train_seconds": train_seconds,
        "train_samples_per_second": train_samples_per_second,
        "train_tokens_per_second": train_tokens_per_second,
        "peak_memory_mb": peak_memory_mb,
        "loss_history": loss_history,
        **details,
        "environment": environment,
    }


def finish_record(output_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Save the record (its file and the experiment's index), then say on the console what the run scored."""
    save_record(output_dir, record)
    print(format_summary(record), flush=True)
    return record
