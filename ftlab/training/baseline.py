"""The non-neural baseline: TF-IDF word n-grams + a linear model per task, on exactly the splits the fine-tuning runs
see: a linear SVM (single-label), one linear SVM per label (multi-label, one-vs-rest), ridge regression
(regression). For pairs of texts the features are both texts' TF-IDF vectors and their elementwise product (the
n-grams they share, weighted), one vocabulary for both.

Its record has the fine-tuning record's shape, so the report puts it in the same table. Where a figure has no
SVM counterpart the choice is stated here: `trainable_params` (= `total_params`) is the number of weights plus
biases, one per n-gram feature and class or label (one row for two classes, and for a regression);
`train_seconds` covers fitting the vectorizer and the model; `train_tokens_per_second` is null, because TF-IDF words
are not the subword tokens the transformers count; `peak_memory_mb` is the process's peak resident set (all of it
runs on the CPU); `loss_history` is empty (LinearSVC reports no loss per step). Its per-example predictions carry
decision scores (`score_<label>`) instead of probabilities; with two classes LinearSVC has one decision function d
(positive: the second class), written as score_<first> = -d and score_<second> = d, so that the largest score is
the prediction for any number of classes; a label of a multi-label run is predicted where its score is above 0.
It is deterministic (fixed solver seed), so a study runs it once, not once per seed.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ftlab import tasks
from ftlab.config import Config
from ftlab.config import group_id

if TYPE_CHECKING:
    import numpy as np

METHOD = "tfidf_svm"  # the baseline's `method` in its record
MODELS = {tasks.SINGLE_LABEL: "linear_svm", tasks.MULTI_LABEL: "one_vs_rest_linear_svm", tasks.REGRESSION: "ridge"}


def describe(cfg: Config, problem_type: str = tasks.SINGLE_LABEL, pairs: bool = False) -> str:
    """The baseline's name in the record's `model` field, e.g. 'tfidf(1,2)+linear_svm'."""
    return f"tfidf(1,{cfg.method.ngram_max}){'_pairs' if pairs else ''}+{MODELS[problem_type]}"


class PairFeatures:
    """TF-IDF of each text of a pair and their elementwise product, over one vocabulary fitted on both texts.
    scikit-learn has no pair featuriser; the product is what lets a linear model see overlap (a ColumnTransformer
    of two vectorizers gives each text its own weights, never what they share)."""

    def __init__(self, ngram_max: int):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True)

    def fit(self, rows: list[tuple[str, str]], y: Any = None) -> "PairFeatures":
        self.vectorizer.fit([text for row in rows for text in row])
        return self

    def transform(self, rows: list[tuple[str, str]]) -> Any:
        from scipy.sparse import hstack

        first = self.vectorizer.transform([row[0] for row in rows])
        second = self.vectorizer.transform([row[1] for row in rows])
        return hstack([first, second, first.multiply(second)]).tocsr()

    def fit_transform(self, rows: list[tuple[str, str]], y: Any = None) -> Any:
        return self.fit(rows).transform(rows)

    def get_params(self, deep: bool = True) -> dict[str, Any]:  # what scikit-learn's Pipeline asks of a step
        return {}


def build_pipeline(ngram_max: int, problem_type: str = tasks.SINGLE_LABEL, pairs: bool = False,
                   class_weights: Optional[list[float]] = None):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    # sublinear_tf (1 + log tf) keeps a word repeated in a long review from dominating it; on the IMDB mirror it
    # scored a little higher and fitted faster, and min_df=2 changed nothing (docs/guide/baseline.md).
    features = PairFeatures(ngram_max) if pairs else TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True)
    # random_state: liblinear shuffles its coordinate order from numpy's global generator otherwise, and scores
    # then differ in the 6th decimal between identical runs.
    if problem_type == tasks.REGRESSION:
        model = Ridge(alpha=1.0)
    elif problem_type == tasks.MULTI_LABEL:
        model = OneVsRestClassifier(LinearSVC(max_iter=1000, random_state=0))
    else:
        weights = None if class_weights is None else dict(enumerate(class_weights))
        model = LinearSVC(max_iter=1000, random_state=0, class_weight=weights)
    return make_pipeline(features, model)


def decision_scores(pipeline: Any, texts: Any, num_labels: int) -> np.ndarray:
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


def _inputs(split: Any) -> Any:
    return list(zip(split["text"], split["text_pair"])) if "text_pair" in split.column_names else split["text"]


def _score_split(pipeline: Any, split: Any, data: Any) -> tuple[dict[str, Any], Any]:
    """A split's metrics and per-example predictions under the run's task."""
    import numpy as np

    from ftlab.runs.predictions import SplitPredictions
    from ftlab.training.metrics import confusion, multi_label_metrics, regression_metrics, single_label_metrics

    inputs, labels = _inputs(split), np.asarray(split["label"])
    if data.problem_type == tasks.REGRESSION:
        scale = data.task.label_scaling or (0.0, 1.0)  # a ridge fit on standardised targets, mapped back
        predictions = pipeline.predict(inputs) * scale[1] + scale[0]
        labels = labels * scale[1] + scale[0]
        return (regression_metrics(labels, predictions),
                SplitPredictions(split["example_id"], labels, predictions, predictions[:, None], "score"))
    if data.problem_type == tasks.MULTI_LABEL:
        labels = labels.astype(int)
        scores = pipeline.decision_function(inputs)
        result = multi_label_metrics(labels, scores, np.zeros(data.num_labels), data.label_names)
        return result, SplitPredictions(split["example_id"], labels, (scores >= 0).astype(int), scores, "score")
    scores = decision_scores(pipeline, inputs, data.num_labels)
    predictions = scores.argmax(axis=1)
    # Decision scores rank like probabilities, which is all ROC-AUC and PR-AUC read.
    result = {**single_label_metrics(labels, predictions, scores if np.isfinite(scores).all() else None,
                                     data.label_names),
              "confusion_matrix": confusion(labels, predictions, data.num_labels)}
    return result, SplitPredictions(split["example_id"], labels, predictions, scores, "score")


def run_baseline(cfg: Config, extra: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """Fit and score the baseline; its record (with the caller's `extra` fields, as for run_training)."""
    import numpy as np

    from ftlab.runs.predictions import SPLITS, save_run_predictions
    from ftlab.data.load import load_data
    from ftlab.runs.directory import resolve_output_dir
    from ftlab.training.record import build_record, cpu_device, environment, finish_record, peak_rss_mb

    output_dir = resolve_output_dir(cfg, METHOD)
    data = load_data(cfg)
    train = data.splits["train"]
    pipeline = build_pipeline(cfg.method.ngram_max, data.problem_type, data.has_pairs, data.class_weights)
    start = time.perf_counter()
    targets = np.asarray(train["label"])
    pipeline.fit(_inputs(train), targets.astype(int) if data.problem_type == tasks.MULTI_LABEL else targets)
    train_seconds = time.perf_counter() - start

    metrics, per_example = {}, {}
    for name in SPLITS:
        start = time.perf_counter()
        result, per_example[name] = _score_split(pipeline, data.splits[name], data)
        seconds = time.perf_counter() - start
        metrics[name] = {**result, "num_samples": len(data.splits[name]),
                         "samples_per_second": len(data.splits[name]) / seconds if seconds else 0.0}

    model = pipeline[-1]
    parts = model.estimators_ if hasattr(model, "estimators_") else [model]
    params = int(sum(np.size(part.coef_) + np.size(part.intercept_) for part in parts if hasattr(part, "coef_")))
    # The seed is recorded but not used by the SVM: it is deterministic.
    record = build_record(
        cfg, method=METHOD, model=describe(cfg, data.problem_type, data.has_pairs), group=group_id(cfg, METHOD),
        output_dir=output_dir,
        data=data, metrics=metrics, predictions=save_run_predictions(output_dir, per_example, data.label_names),
        trainable_params=params, total_params=params, trainable_percent=100.0, train_seconds=train_seconds,
        train_samples_per_second=len(train) / train_seconds if train_seconds else 0.0, train_tokens_per_second=None,
        peak_memory_mb=peak_rss_mb(), loss_history=[], environment=environment(cpu_device()), eval_only=False,
        **(extra or {}))
    finish_record(output_dir, record)
    return record
