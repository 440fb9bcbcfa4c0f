"""The report's figures: training-loss curves, accuracy against trainable parameters (one panel per dataset,
confidence intervals and seeds), training time per run."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ftlab.runs.directory import write_atomic
from ftlab.runs.record import RunRecord
from ftlab.runtime import pyplot

if TYPE_CHECKING:
    from ftlab.analysis.compare import Summary


def method_colors(methods: list[str]) -> dict[str, Any]:
    """One colour per method, in the order given: the report's plots and the learning curves share them."""
    palette = pyplot().get_cmap("tab10")
    return {method: palette(i % 10) for i, method in enumerate(methods)}


def _method_colors(records: list[RunRecord]) -> dict[str, Any]:
    return method_colors(sorted({record.method for record in records}))


def save_figure(fig: Any, path: Path) -> Path:
    """The figure as a PNG, written atomically, and closed."""
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    pyplot().close(fig)
    return path


def loss_curves(records: list[RunRecord], path: Path, label: Callable[[RunRecord], str]) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for record in records:
        history = record.loss_history
        ax.plot([point["step"] for point in history], [point["loss"] for point in history],
                marker="o" if len(history) < 3 else None, label=label(record))
    ax.set(title="Training loss", xlabel="optimizer step", ylabel="training loss (cross-entropy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def accuracy_vs_params(summaries: list["Summary"], path: Path) -> Path:
    """Per group: mean test accuracy with its 95% CI as error bar, and a small point per seed. One panel per
    dataset: accuracies on different test sets are not comparable, so they never share an axis."""
    plt = pyplot()
    colors = _method_colors([s.group.records[0] for s in summaries])
    datasets = list(dict.fromkeys(s.source for s in summaries))  # a panel per dataset and task
    fig, axes = plt.subplots(1, len(datasets), figsize=(8 * len(datasets), 5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        panel = [s for s in summaries if s.source == dataset]
        params = [s.group.records[0].trainable_params for s in panel]
        for position, (summary, count) in enumerate(zip(panel, params)):
            first = summary.group.records[0]
            # Groups with equal parameter counts (LoRA and QLoRA, head and the raw model) are set side by side,
            # a few percent apart on the log axis, so that their error bars do not hide each other.
            same = [i for i, other in enumerate(params) if other == count]
            offset = same.index(position) - (len(same) - 1) / 2
            x = count * 1.06 ** offset
            color = colors[first.method]
            mean = sum(summary.test_score) / summary.n
            error = None if summary.interval is None else [[mean - summary.interval[0]], [summary.interval[1] - mean]]
            ax.errorbar([x], [mean], yerr=error, fmt="o", color=color, markersize=7, capsize=4, zorder=3)
            if summary.n > 1:
                ax.scatter([x] * summary.n, summary.test_score, color=color, s=10, alpha=0.6, zorder=4)
            left = offset < 0  # the left one of a side-by-side pair is labelled on its left, clear of the other
            ax.annotate(summary.group.name, (x, mean), textcoords="offset points", xytext=(-6 if left else 6, 4),
                        ha="right" if left else "left", fontsize="x-small")
        ax.set_xscale("log")
        ax.margins(x=0.1)  # room for the labels of the outermost points
        metric = "accuracy" if panel[0].task.primary == "accuracy" else panel[0].task.primary_label
        ax.set(title=f"{dataset[0]}: test {metric} against trainable parameters", xlabel="trainable parameters (log "
               "scale)", ylabel=f"test {metric} (mean, 95% CI; small points: seeds)")
        ax.grid(alpha=0.3, which="both")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=color) for color in colors.values()]
    axes[0][-1].legend(handles, list(colors), title="method", fontsize="small")
    return save_figure(fig, path)


def train_time(records: list[RunRecord], path: Path, label: Callable[[RunRecord], str]) -> Path:
    plt = pyplot()
    colors = _method_colors(records)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(records) + 2), 5))
    names = [label(r) for r in records]
    ax.bar(range(len(records)), [r.train_seconds for r in records],
           color=[colors[r.method] for r in records])
    ax.set_xticks(range(len(records)), names, rotation=45, ha="right", fontsize="small")
    handles = [plt.Rectangle((0, 0), 1, 1, color=color) for color in colors.values()]
    ax.legend(handles, list(colors), title="method", fontsize="small")
    ax.set(title="Training time per run", xlabel="run", ylabel="training time (s, wall clock)")
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def plot_all(records: list[RunRecord], summaries: list["Summary"], img_dir: Path, prefix: str,
             label: Callable[[RunRecord], str]) -> list[Path]:
    """Write the PNGs as <img_dir>/<prefix>_<plot>.png. Runs without a loss history (the SVM baseline, eval-only
    runs) have no curve; with none at all the loss plot is left out."""
    with_loss = [r for r in records if r.loss_history]
    plots = [loss_curves(with_loss, img_dir / f"{prefix}_loss_curves.png", label)] if with_loss else []
    plots.append(accuracy_vs_params(summaries, img_dir / f"{prefix}_accuracy_vs_params.png"))
    plots.append(train_time(records, img_dir / f"{prefix}_train_time.png", label))
    return plots
