"""The non-neural baseline: TF-IDF word n-grams + a linear SVM, on exactly the splits the fine-tuning runs see.

Its record has the fine-tuning record's shape, so the report puts it in the same table. Where a figure has no
SVM counterpart the choice is stated here: `trainable_params` (= `total_params`) is the number of SVM weights
plus biases, one per n-gram feature and class (one row for two classes); `train_seconds` covers fitting the
vectorizer and the SVM; `train_tokens_per_second` is null, because TF-IDF words are not the subword tokens
the transformers count; `peak_memory_mb` is the process's peak resident set (all of it runs on the CPU);
`loss_history` is empty (LinearSVC reports no loss per step). Its per-example predictions carry decision scores
(`score_<label>`) instead of probabilities; with two classes LinearSVC has one decision function d (positive: the
second class), written as score_<first> = -d and score_<second> = d, so that the largest score is the prediction
for any number of classes. It is deterministic (fixed solver seed), so a study runs it once, not once per seed.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ftlab.config import Config
from ftlab.config import group_id

if TYPE_CHECKING:
    import numpy as np

METHOD = "tfidf_svm"  # the baseline's `method` in its record


def describe(cfg: Config) -> str:
    """The baseline's name in the record's `model` field, e.g. 'tfidf(1,2)+linear_svm'."""
    return f"tfidf(1,{cfg.method.ngram_max})+linear_svm"


def build_pipeline(ngram_max: int):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    # sublinear_tf (1 + log tf) keeps a word repeated in a long review from dominating it; on the IMDB mirror it
    # scored a little higher and fitted faster, and min_df=2 changed nothing (docs/guide/baseline.md).
    # random_state: liblinear shuffles its coordinate order from numpy's global generator otherwise, and scores
    # then differ in the 6th decimal between identical runs.
    return make_pipeline(TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True),
                         LinearSVC(max_iter=1000, random_state=0))


def decision_scores(pipeline: Any, texts: list[str], num_labels: int) -> np.ndarray:
    """(examples, classes) decision scores in label-id order; classes the SVM never saw in training score -inf.
    Their argmax is what pipeline.predict returns (for two classes too: d > 0 picks the second)."""
    import numpy as np

    svm = pipeline[-1]
    raw = pipeline.decision_function(texts)
    if raw.ndim == 1:  # two classes: one function, positive for svm.classes_[1]
        raw = np.stack([-raw, raw], axis=1)
    scores = np.full((len(texts), num_labels), -np.inf)
    scores[:, svm.classes_] = raw
    return scores


def run_baseline(cfg: Config, extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Fit and score the baseline; its record (with the caller's `extra` fields, as for run_training)."""
    import numpy as np

    from ftlab.training.metrics import split_metrics
    from ftlab.runs.predictions import SPLITS, SplitPredictions, save_run_predictions
    from ftlab.data.load import load_data
    from ftlab.runs.directory import resolve_output_dir
    from ftlab.training.record import build_record, cpu_device, environment, finish_record, peak_rss_mb

    output_dir = resolve_output_dir(cfg, METHOD)
    data = load_data(cfg)
    train = data.splits["train"]
    pipeline = build_pipeline(cfg.method.ngram_max)
    start = time.perf_counter()
    pipeline.fit(train["text"], train["label"])
    train_seconds = time.perf_counter() - start

    metrics, per_example = {}, {}
    for name in SPLITS:
        split = data.splits[name]
        start = time.perf_counter()
        scores = decision_scores(pipeline, split["text"], data.num_labels)
        predictions = scores.argmax(axis=1)
        seconds = time.perf_counter() - start
        labels = np.asarray(split["label"])
        metrics[name] = {**split_metrics(labels, predictions, data.num_labels),
                         "samples_per_second": len(split) / seconds if seconds else 0.0}
        per_example[name] = SplitPredictions(split["example_id"], labels, predictions, scores, "score")

    svm = pipeline[-1]
    params = int(svm.coef_.size + svm.intercept_.size)
    # The seed is recorded but not used by the SVM: it is deterministic.
    record = build_record(
        cfg, method=METHOD, model=describe(cfg), group=group_id(cfg, METHOD), output_dir=output_dir,
        data=data, metrics=metrics, predictions=save_run_predictions(output_dir, per_example, data.label_names),
        trainable_params=params, total_params=params, trainable_percent=100.0, train_seconds=train_seconds,
        train_samples_per_second=len(train) / train_seconds if train_seconds else 0.0, train_tokens_per_second=None,
        peak_memory_mb=peak_rss_mb(), loss_history=[], environment=environment(cpu_device()), eval_only=False,
        **(extra or {}))
    finish_record(output_dir, record)
    return record
