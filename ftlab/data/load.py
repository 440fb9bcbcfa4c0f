"""The splits of a run, from its config: the same for every method of a study and for the SVM baseline."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ftlab.config import Config
from ftlab.console import say

if TYPE_CHECKING:
    from ftlab.data.splits import PreparedData


def load_data(cfg: Config) -> "PreparedData":
    """The splits every method of a study sees: same source, same seeds, same subsamples."""
    from ftlab.data.sources import load_raw
    from ftlab.data.splits import prepare_splits

    raw = load_raw(cfg.data.dataset, cfg.data.text_column, cfg.data.label_column)
    data = prepare_splits(raw, cfg.data.dataset, validation_fraction=cfg.data.validation_fraction,
                          test_fraction=cfg.data.test_fraction, data_seed=cfg.data.data_seed,
                          max_train=cfg.data.max_train_samples, max_eval=cfg.data.max_eval_samples,
                          max_test=cfg.data.max_test_samples,
                          train_subsample=cfg.data.train_subsample)
    splits = ", ".join(f"{name} {size:,}" for name, size in data.sizes().items())
    say(f"data: {cfg.data.dataset} from {data.origin}; {splits}; labels {', '.join(data.label_names)}")
    return data
