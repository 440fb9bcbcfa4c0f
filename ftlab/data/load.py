"""The splits of a run, from its config: the same for every method of a study and for the SVM baseline."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ftlab import tasks
from ftlab.config import Config, check_task_flags
from ftlab.console import say

if TYPE_CHECKING:
    from ftlab.data.splits import PreparedData


def load_data(cfg: Config) -> "PreparedData":
    """The splits every method of a study sees: same source, same seeds, same subsamples."""
    from ftlab.data.labels import class_weight_values
    from ftlab.data.sources import load_raw
    from ftlab.data.splits import prepare_splits

    raw = load_raw(cfg.data.dataset, cfg.data.text_column, cfg.data.label_column, cfg.data.text_pair_column,
                   cfg.data.dataset_config)
    data = prepare_splits(raw, cfg.data.dataset, validation_fraction=cfg.data.validation_fraction,
                          test_fraction=cfg.data.test_fraction, data_seed=cfg.data.data_seed,
                          max_train=cfg.data.max_train_samples, max_eval=cfg.data.max_eval_samples,
                          max_test=cfg.data.max_test_samples,
                          train_subsample=cfg.data.train_subsample, problem_type=cfg.task.problem_type,
                          label_separator=cfg.task.label_separator, label_scaling=cfg.task.label_scaling)
    splits = ", ".join(f"{name} {size:,}" for name, size in data.sizes().items())
    task = data.task
    what = "target" if task.problem_type == tasks.REGRESSION else "labels"
    say(f"data: {cfg.data.dataset} from {data.origin}; {splits}; {what} {_shown(data.label_names)}"
        + ("; pairs of texts" if data.has_pairs else ""))
    say(f"task: {task.problem_type} ({'inferred: ' + task.reason if task.inferred else 'from --problem_type'})"
        + ("" if task.label_scaling is None else
           f"; targets standardised with the training split's mean {task.label_scaling[0]:.4g} and sd "
           f"{task.label_scaling[1]:.4g}"))
    # The flags that depend on the task, once the task is known and before the model loads.
    check_task_flags(cfg, task.problem_type, f"inferred: {task.reason}" if task.inferred else "--problem_type")
    data.class_weights = class_weight_values(cfg.task.class_weights, data.splits["train"], task.problem_type,
                                             data.label_names, cfg.data.dataset)
    if data.class_weights is not None:
        say(f"class weights: {', '.join(f'{name} {weight:.3g}' for name, weight in zip(data.label_names, data.class_weights))}")
    return data


def _shown(names: list[str], limit: int = 12) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
