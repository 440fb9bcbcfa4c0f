"""The model card (README.md) written beside every model a run saves (its adapter, merged model, model/) and every
export: what it is, the data and method it was trained with, its metrics with their intervals, what training cost,
and the commands that reproduce it. huggingface_hub's ModelCard writes it, so the hub shows its metadata (base
model, dataset, pipeline, tags) when the directory is pushed. Light: no torch."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ftlab import methods
from ftlab.config import command_line
from ftlab.data.registry import looks_like_path
from ftlab.runs.model import rebased
from ftlab.runs.record import RunRecord

CARD_NAME = "README.md"
CONFIDENCE = 0.95


def _interval(accuracy: float, texts: int) -> str:
    """The accuracy's Wilson score interval: from the count right out of `texts` (a run's record keeps the count,
    its prediction files the examples; the interval must not need the files, which a pushed model lacks)."""
    from scipy.stats import binomtest

    interval = binomtest(round(accuracy * texts), texts).proportion_ci(CONFIDENCE, method="wilson")
    return f"{accuracy:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def _metrics(record: RunRecord) -> list[str]:
    task = record.task
    if not task.mcnemar:  # multi-label F1 or an MSE: not a share of texts right, so no binomial interval
        lines = [f"| split | texts | {task.primary_label} | {task.secondary_label} |", "|---|---:|---:|---:|"]
        for split in ("validation", "test"):
            if split in record.splits:
                metrics = record.metrics(split)
                texts = metrics.get("num_samples") or record.split_size(split)
                lines.append(f"| {split} | {texts:,} | {metrics[task.primary]:.4f} "
                             f"| {metrics.get(task.secondary, float('nan')):.4f} |")
        return lines
    # The record's F1 is the positive class's for two labels, macro-averaged otherwise (ftlab.training.metrics).
    f1 = f"F1 ({record.label_names[1]})" if len(record.label_names) == 2 else "macro F1"
    lines = [f"| split | texts | accuracy ({CONFIDENCE:.0%} Wilson interval) | {f1} |", "|---|---:|---|---:|"]
    for split in ("validation", "test"):
        if split not in record.splits:
            continue
        metrics = record.metrics(split)
        texts = metrics.get("num_samples") or record.split_size(split)
        lines.append(f"| {split} | {texts:,} | {_interval(metrics['accuracy'], texts)} | {metrics['f1']:.4f} |")
    return lines


def _cost(record: RunRecord) -> list[str]:
    speed = record.train_samples_per_second
    memory = record.peak_memory_mb
    return [f"- Training: {record.train_seconds:,.0f} s on {record.device}, {record.precision or 'fp32'}"
            + (f", {speed:,.1f} samples/s" if speed else "") + (f", peak memory {memory:,.0f} MB" if memory else ""),
            f"- Trainable parameters: {record.trainable_params:,} of {record.total_params:,} "
            f"({record.trainable_percent:.2f}%)"]


def card_text(kind: str, record: Optional[RunRecord], extra: str = "", export_command: str = "") -> str:
    """The card's markdown with its metadata header. kind: what the directory holds, in words ("PEFT adapter",
    "merged model", "ONNX export", ...); record: the run that trained it (None: a model from elsewhere, described
    by what the directory itself says); extra: sections the caller adds (an export's parity and speed)."""
    from huggingface_hub import ModelCard, ModelCardData

    if record is None:
        body = [f"# {kind}", "", "Saved by ftlab; the run that trained it left no record here, so its data, "
                "metrics and cost are unknown.", ""]
        data = ModelCardData(library_name="onnx" if "ONNX" in kind else "transformers",
                             pipeline_tag="text-classification", tags=["ftlab"])
        return str(ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(body) + extra))
    method = methods.get(record.method)
    dataset = record.dataset
    body = [f"# {record.model}, fine-tuned on {dataset} with {method.label}: {kind}", "",
            f"A text classifier ({', '.join(record.label_names)}) trained by ftlab. Method: {method.label} "
            f"({method.trains}); texts cut to {record.option('data', 'max_length')} tokens"
            + (f" ({record.truncation})" if record.truncation else "")
            + (f", {record.pooling} pooling." if record.pooling else "."), "",
            "## Data", "",
            f"{dataset} ({record.data_origin or 'source unrecorded'}): "
            + ", ".join(f"{split} {record.split_size(split):,}" for split in ("train", "validation", "test")
                        if split in record.data.get("data", {}).get("sizes", {})) + " texts.", "",
            "## Metrics", "", *_metrics(record), "",
            "## Training cost", "", *_cost(record), "",
            "## Reproduce", "", "```bash", "python main.py " + " ".join(command_line(record.config))]
    if export_command:
        body.append(export_command)
    body += ["```", ""]
    data = ModelCardData(library_name="onnx" if "ONNX" in kind else ("peft" if "adapter" in kind else "transformers"),
                         base_model=record.model if not Path(record.model).exists() else None,
                         datasets=None if looks_like_path(dataset) else [dataset], pipeline_tag="text-classification",
                         metrics=["accuracy", "f1"], tags=["ftlab", method.name, "text-classification"])
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(body) + extra))


def write_card(directory: Path, kind: str, record: Optional[RunRecord], extra: str = "",
               export_command: str = "") -> Path:
    """README.md in `directory` (replacing the one PEFT's save_pretrained writes for an adapter)."""
    path = Path(directory) / CARD_NAME
    path.write_text(card_text(kind, record, extra, export_command), encoding="utf-8")
    return path


def write_run_cards(record: RunRecord) -> list[Path]:
    """A card beside each model the run saved (adapter, merged, model/), each directory once."""
    kinds = {"adapter": "PEFT adapter", "merged": "merged model", "model": "saved model"}
    written: dict[Path, Path] = {}
    for key in ("adapter", "merged", "model"):
        if key in record.saved:
            directory = rebased(record, record.saved[key])
            if directory not in written and directory.is_dir():
                written[directory] = write_card(directory, kinds[key], record)
    return list(written.values())
