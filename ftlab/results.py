"""The run record: one self-describing JSON file per run, written atomically, and its console summary."""
from __future__ import annotations

import fcntl
import json
import os
import platform
import resource
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional


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


def data_summary(data: Any) -> dict[str, Any]:
    return {"origin": data.origin, "sizes": data.sizes(), "label_names": data.label_names,
            "test_is_validation": data.test_is_validation, "notes": data.notes}


def save_record(output_dir: Path, record: dict[str, Any]) -> Path:
    """result.json in the run's directory, and one line in the experiment's index (the run directory's parent).

    The index lets a sweep be read in one pass and survives runs whose directories are later pruned. The lock
    keeps lines whole when array jobs of one sweep finish at the same moment.
    """
    path = write_json_atomic(output_dir / "result.json", record)
    line = json.dumps(record, sort_keys=False, separators=(",", ":")) + "\n"
    with open(output_dir.parent / INDEX_NAME, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(line)
    return path


def format_summary(record: dict[str, Any]) -> str:
    cfg = record["config"]
    header = (f"{record['method']} | {record['model']} | {cfg['data']['dataset']} | trainable "
              f"{record['trainable_params']:,} of {record['total_params']:,} ({record['trainable_percent']:.2f}%)")
    rows = [f"{'split':<11}{'n':>7}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>8}"]
    for split, m in record["metrics"].items():
        rows.append(f"{split:<11}{m['num_samples']:>7}{m['accuracy']:>10.4f}{m['precision']:>11.4f}"
                    f"{m['recall']:>8.4f}{m['f1']:>8.4f}")
    tokens = record["train_tokens_per_second"]  # None where tokens mean nothing (the TF-IDF baseline)
    footer = (f"train {record['train_seconds']:.1f} s, {record['train_samples_per_second']:.1f} samples/s, "
              f"{'n/a' if tokens is None else format(tokens, '.0f')} tokens/s, "
              f"peak memory {record['peak_memory_mb']:.0f} MB")
    lines = [header, *rows, footer]
    if record.get("collapse"):
        lines.append(f"COLLAPSED: {record['collapse']}")
    return "\n".join([*lines, f"record: {record['output_dir']}/result.json"])
