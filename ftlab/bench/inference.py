"""`export --bench`: what serving the model costs, for each way it can be run, side by side in one process on the
same texts: batch-1 latency (p50, p95), batch-32 throughput (and so ms per 1,000 texts), the model's size on disk
and the memory it takes.

Each backend is timed end to end as a caller sees it: tokenising (cut as the run cut its texts) and the forward
pass, one text at a time for latency, BATCH texts at a time for throughput, after a few warm-up texts. torch and
ONNX Runtime get the same number of threads. Peak memory is how far the process's resident memory rose above its
level before the backend loaded, read from Linux's high-water mark (VmHWM), which is reset before each backend
(/proc/self/clear_refs); None where the system offers no such reset.
"""
from __future__ import annotations

import gc
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ftlab.runs.labelling import logits

BATCH = 32
WARMUP = 3
LATENCY_TEXTS = 100
THROUGHPUT_TEXTS = 512
_STATUS = Path("/proc/self/status")


@dataclass
class Backend:
    name: str  # torch, torch merged, onnx fp32, onnx int8, ...
    load: Callable[[], tuple[Any, Any]]  # -> (model, tokenizer) as ftlab.runs.labelling.logits takes them
    size_bytes: Optional[int]  # on disk: the weights it loads; None: its tensors' bytes once loaded (not saved)


def _memory_kb(field: str) -> Optional[int]:
    found = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE) if _STATUS.is_file() else None
    return int(found.group(1)) if found else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident set size (Linux >= 4.0)
    except OSError:
        return False
    return True


def measure(backend: Backend, texts: Sequence[str], latency_texts: int = LATENCY_TEXTS,
            throughput_texts: int = THROUGHPUT_TEXTS) -> dict[str, Any]:
    """One backend's row: load it, warm it up, time it; its memory freed again afterwards."""
    gc.collect()
    resident_before = _memory_kb("VmRSS")
    peak_known = _reset_peak() and resident_before is not None
    started = time.perf_counter()
    model, tokenizer = backend.load()
    load_seconds = time.perf_counter() - started
    size = backend.size_bytes if backend.size_bytes is not None else \
        sum(t.numel() * t.element_size() for t in model.state_dict().values())
    logits(model, tokenizer, texts[:WARMUP], batch_size=1)
    latencies = []
    for text in texts[:latency_texts]:
        started = time.perf_counter()
        logits(model, tokenizer, [text], batch_size=1)
        latencies.append(1000 * (time.perf_counter() - started))
    batch_texts = list(texts[:throughput_texts])
    started = time.perf_counter()
    logits(model, tokenizer, batch_texts, batch_size=BATCH)
    throughput = len(batch_texts) / (time.perf_counter() - started)
    peak = _memory_kb("VmHWM") if peak_known else None
    del model, tokenizer
    gc.collect()
    return {"backend": backend.name, "size_mb": size / 2**20, "load_seconds": load_seconds,
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "latency_ms_p95": float(np.percentile(latencies, 95)),
            "latency_texts": len(latencies), "throughput_texts_per_second": throughput,
            "ms_per_1000_texts": 1e6 / throughput, "throughput_texts": len(batch_texts),
            "peak_memory_mb": None if peak is None else (peak - resident_before) / 1024}


def run_bench(backends: Sequence[Backend], texts: Sequence[str], latency_texts: int = LATENCY_TEXTS,
              throughput_texts: int = THROUGHPUT_TEXTS) -> list[dict[str, Any]]:
    """Every backend in turn on the same texts; torch's thread count is ONNX Runtime's too (the caller loads the
    graphs with it)."""
    return [measure(backend, texts, latency_texts, throughput_texts) for backend in backends]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The benchmark as a markdown table."""
    lines = ["| backend | size MB | batch-1 latency p50 ms | p95 ms | batch-32 texts/s | ms per 1,000 texts "
             "| peak memory MB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        memory = "n/a" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:,.0f}"
        lines.append(f"| {row['backend']} | {row['size_mb']:,.1f} | {row['latency_ms_p50']:.1f} "
                     f"| {row['latency_ms_p95']:.1f} | {row['throughput_texts_per_second']:,.1f} "
                     f"| {row['ms_per_1000_texts']:,.0f} | {memory} |")
    return "\n".join(lines)
