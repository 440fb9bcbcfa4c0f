"""The three tasks below the command line: how the label column decides the task and which inputs it refuses (one
line naming the row or value), pairs of texts sharing the token budget, each task's loss, the multi-label
thresholds tuned on validation, a regression's scaled targets mapped back, and the per-example scores of the paired
tests with their calibration by simulation (as tests/test_seed_variance.py checks the single-label ones)."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, mean_squared_error

from ftlab import tasks
from ftlab.analysis import stats
from ftlab.analysis.compare import example_scores
from ftlab.data.labels import class_weight_values
from ftlab.data.pairs import encode_pairs, pair_template
from ftlab.data.sources import RawData, load_raw
from ftlab.data.splits import prepare_splits
from ftlab.errors import ConfigError, DataError
from ftlab.runs.plan import plan_run
from ftlab.training.metrics import Scorer, samples_f1, tune_thresholds
from tests.conftest import word_level_tokenizer

SPLITS = dict(validation_fraction=0.1, test_fraction=0.1, data_seed=42, max_train=None, max_eval=None,
              max_test=None)


def _raw(labels: list, pairs: bool = False, column: str = "label") -> RawData:
    columns = {"text": [f"text {i}" for i in range(len(labels))], column: labels}
    if pairs:
        columns["second"] = [f"pair {i}" for i in range(len(labels))]
    return RawData(datasets.DatasetDict({"train": datasets.Dataset.from_dict(columns)}), "local", "text", column,
                   text_pair_column="second" if pairs else None)


def _prepare(raw: RawData, **kwargs):
    return prepare_splits(raw, "d", **{**SPLITS, **kwargs})


@pytest.mark.parametrize("labels, kwargs, problem_type, names", [
    ([["a", "b"] if i % 3 else ["c"] for i in range(100)], {}, tasks.MULTI_LABEL, ["a", "b", "c"]),
    ([[1, 0, 1] if i % 3 else [0, 1, 0] for i in range(100)], {}, tasks.MULTI_LABEL, ["0", "1", "2"]),
    (["a|b" if i % 3 else "c" for i in range(100)], {"label_separator": "|"}, tasks.MULTI_LABEL, ["a", "b", "c"]),
    ([i * 0.37 for i in range(100)], {}, tasks.REGRESSION, ["label"]),
    ([i for i in range(100)], {}, tasks.REGRESSION, ["label"]),  # 100 distinct integers: numbers, not classes
    ([i % 3 for i in range(100)], {}, tasks.SINGLE_LABEL, ["0", "1", "2"]),
    (["pos" if i % 2 else "neg" for i in range(100)], {}, tasks.SINGLE_LABEL, ["neg", "pos"]),
])
def test_the_label_column_decides_the_task(labels, kwargs, problem_type, names):
    data = _prepare(_raw(labels), **kwargs)
    assert (data.problem_type, data.task.inferred, data.label_names) == (problem_type, True, names)


def test_hub_feature_types_decide_the_task(tmp_path):
    """A list of ClassLabel is multi-label with the feature's names; a float column is a regression (read from a
    save_to_disk directory, which keeps the features exactly as the hub's datasets carry them)."""
    features = datasets.Features({"text": datasets.Value("string"),
                                  "topics": datasets.Sequence(datasets.ClassLabel(names=["x", "y", "z"])),
                                  "score": datasets.Value("float32")})
    rows = {"text": [f"t {i}" for i in range(100)], "topics": [[i % 3, (i + 1) % 3] for i in range(100)],
            "score": [float(i % 4) for i in range(100)]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(tmp_path / "d")
    multi = _prepare(load_raw(str(tmp_path / "d"), None, "topics"))
    assert (multi.problem_type, multi.label_names) == (tasks.MULTI_LABEL, ["x", "y", "z"])
    assert multi.splits["train"][0]["label"] in ([1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0])
    assert _prepare(load_raw(str(tmp_path / "d"), None, "score")).problem_type == tasks.REGRESSION


def test_several_label_columns_are_one_multi_hot_target():
    raw = RawData(datasets.DatasetDict({"train": datasets.Dataset.from_dict(
        {"text": [f"t {i}" for i in range(100)], "food": [i % 2 for i in range(100)],
         "water": [(i // 2) % 2 for i in range(100)]})}), "local", "text", "food,water")
    data = _prepare(raw)
    assert (data.problem_type, data.label_names) == (tasks.MULTI_LABEL, ["food", "water"])
    assert data.task.reason == "2 label columns (food,water)"


@pytest.mark.parametrize("labels, kwargs, message", [
    (["pos"] * 99 + ["0.5"], {}, r"mixes forms: row train/0 is text \('pos'\), row train/99 is a number \('0.5'\)"),
    ([i + 0.5 for i in range(99)] + [float("nan")], {},
     r"^--dataset d: row train/99 has the score nan in column 'label'; a regression needs a finite number in every "
     r"row$"),
    (["1.5"] * 99 + ["oops"], {"problem_type": tasks.REGRESSION}, r"row train/99 has the score 'oops'"),
    ([[0, 1], [1, 0]] * 49 + [[1, 1, 0], [0, 1]], {}, r"row train/98 of 'label' is \[1, 1, 0\]; the multi-hot rows "
                                                     r"have 2 values of 0 or 1"),
])
def test_bad_labels_are_one_line_naming_the_row(labels, kwargs, message):
    with pytest.raises(DataError, match=message):
        _prepare(_raw(labels), **kwargs)


def test_a_jsonl_label_column_of_lists_and_single_labels_names_both_rows(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps({"text": f"t {i}", "label": ["a", "b"] if i != 7 else "a"}) + "\n"
                            for i in range(100)))
    with pytest.raises(DataError, match=r"^--dataset d: label column 'label' mixes forms: row train/0 is a list "
                                        r"\(\['a', 'b'\]\), row train/7 is text \('a'\); give every row the same form"):
        _prepare(load_raw(str(path), None, None))


def test_a_label_the_training_split_never_has_is_named_with_its_row():
    raw = RawData(datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [f"t {i}" for i in range(100)],
                                             "label": [["a"] if i % 2 else ["b"] for i in range(100)]}),
        "test": datasets.Dataset.from_dict({"text": [f"u {i}" for i in range(12)],
                                            "label": [["a"]] * 11 + [["a", "zebra"]]})}), "local", "text", "label")
    with pytest.raises(DataError, match=r"^--dataset d: row test/11 has the label 'zebra', the training split never "
                                        r"has it \(labels: a, b\)$"):
        _prepare(raw)


def test_a_missing_pair_column_lists_the_columns():
    raw = _raw([i % 2 for i in range(100)], pairs=True)
    raw.text_pair_column = "hypothesis"
    with pytest.raises(DataError, match=r"^--dataset d: split 'train' has no text pair column 'hypothesis'; its "
                                        r"columns are text, label, second \(choose with --text_pair_column\)$"):
        _prepare(raw)


def test_task_flags_that_do_not_fit_the_task_are_refused():
    with pytest.raises(ConfigError, match=r"^--class_weights balanced: a regression has no classes to weigh "
                                          r"\(--problem_type\); use it with single_label or multi_label$"):
        plan_run(["--problem_type", "regression", "--class_weights", "balanced"])
    with pytest.raises(ConfigError, match=r"^--metric_for_best accuracy: not a regression metric"):
        plan_run(["--problem_type", "regression", "--metric_for_best", "accuracy"])
    with pytest.raises(ConfigError, match=r"^--threshold 0.3: only multi-label runs threshold their labels"):
        plan_run(["--problem_type", "single_label", "--threshold", "0.3"])
    assert plan_run(["--problem_type", "multi_label"]).task.problem_type == tasks.MULTI_LABEL
    with pytest.raises(ConfigError, match=r"conflicting flags: --metric_for_best_model f1 and --metric_for_best "
                                          r"macro_f1"):
        plan_run(["--metric_for_best_model", "f1", "--metric_for_best", "macro_f1"])


def test_class_weights_balanced_and_given():
    train = datasets.Dataset.from_dict({"label": [0] * 30 + [1] * 10})
    assert class_weight_values("balanced", train, tasks.SINGLE_LABEL, ["a", "b"], "d") == pytest.approx(
        [40 / (2 * 30), 40 / (2 * 10)])
    assert class_weight_values("1,4", train, tasks.SINGLE_LABEL, ["a", "b"], "d") == [1.0, 4.0]
    with pytest.raises(DataError, match=r"^--class_weights 1,2,3: 3 weights for 2 classes \(a, b\)"):
        class_weight_values("1,2,3", train, tasks.SINGLE_LABEL, ["a", "b"], "d")
    multi = datasets.Dataset.from_dict({"label": [[1.0, 0.0]] * 10 + [[0.0, 1.0]] * 30})
    assert class_weight_values("balanced", multi, tasks.MULTI_LABEL, ["a", "b"], "d") == [3.0, 1 / 3]


def test_pairs_share_the_budget_and_each_text_keeps_its_head_and_tail():
    tokenizer = word_level_tokenizer()  # its template has no pair form: the stated one puts [SEP] between
    assert pair_template(tokenizer) == "[CLS] A [SEP] B [SEP]"
    long = " ".join(["good"] + ["film"] * 20 + ["awful"])
    encoded = encode_pairs(tokenizer, [long], ["great plot"], max_length=12, truncation="head_tail")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    # 12 = [CLS] + 7 of the long text + [SEP] + the short one whole (2) + [SEP]: longest first gives way.
    assert tokens == ["[CLS]", "good", "film", "film", "film", "film", "film", "awful", "[SEP]", "great", "plot",
                      "[SEP]"]
    tail = encode_pairs(tokenizer, [long], ["great plot"], max_length=12, truncation="tail")
    assert tokenizer.convert_ids_to_tokens(tail["input_ids"][0])[1:8] == ["film"] * 6 + ["awful"]


def test_a_decoder_without_a_pair_template_gets_the_stated_one_and_keeps_it_when_saved(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = word_level_tokenizer("gpt2")
    assert pair_template(tokenizer) == "A <|endoftext|> B"
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.convert_ids_to_tokens(reloaded(["good"], ["bad"])["input_ids"][0]) == ["good", "<|endoftext|>",
                                                                                        "bad"]
    assert reloaded(["good"])["input_ids"][0] == tokenizer(["good"], add_special_tokens=False)["input_ids"][0]


@pytest.mark.parametrize("problem_type, labels, expected", [
    (tasks.MULTI_LABEL, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]),
     lambda logits, y: F.binary_cross_entropy_with_logits(logits, y)),
    (tasks.REGRESSION, torch.tensor([0.5, -1.2]), lambda logits, y: F.mse_loss(logits.squeeze(-1), y)),
    (tasks.SINGLE_LABEL, torch.tensor([2, 0]), lambda logits, y: F.cross_entropy(logits, y)),
])
def test_the_model_loss_is_the_tasks(problem_type, labels, expected, tiny_model_dir):
    """What load_classifier builds computes binary cross-entropy per label, squared error, or cross-entropy."""
    from ftlab.config import MethodArgs
    from ftlab.models.load import load_classifier
    from ftlab.models.sources import ModelSource

    names = ["a", "b", "c"] if problem_type != tasks.REGRESSION else ["score"]
    model = load_classifier(ModelSource(str(tiny_model_dir), str(tiny_model_dir), "local"), names, MethodArgs(),
                            problem_type=problem_type).eval()
    assert model.config.problem_type == problem_type
    inputs = {"input_ids": torch.tensor([[2, 7, 9, 3], [2, 8, 3, 0]]), "attention_mask": torch.tensor(
        [[1, 1, 1, 1], [1, 1, 1, 0]])}
    output = model(**inputs, labels=labels)
    assert output.loss.item() == pytest.approx(expected(output.logits, labels).item(), rel=1e-5)


def test_class_weights_weigh_the_loss():
    from ftlab.training.losses import weighted_loss

    logits = torch.tensor([[2.0, -1.0], [0.3, 0.2], [-1.0, 1.5]])
    labels = torch.tensor([0, 1, 1])
    loss = weighted_loss(tasks.SINGLE_LABEL, [1.0, 3.0])({"logits": logits}, labels)
    per_example = F.cross_entropy(logits, labels, reduction="none")
    assert loss.item() == pytest.approx(((per_example * torch.tensor([1.0, 3.0, 3.0])).sum() / 7.0).item())
    assert loss.item() != pytest.approx(per_example.mean().item())
    multi = weighted_loss(tasks.MULTI_LABEL, [2.0, 1.0])({"logits": logits[:, :2]}, torch.tensor(
        [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    assert multi.item() == pytest.approx(F.binary_cross_entropy_with_logits(
        logits[:, :2], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), pos_weight=torch.tensor([2.0, 1.0])).item())
    assert weighted_loss(tasks.REGRESSION, None) is None


def test_thresholds_are_the_best_f1_cut_on_validation():
    """Label 0: positives at 0.30 and 0.35 among negatives at 0.10, 0.20, 0.32: the best F1 (0.8) predicts the top
    three, cut halfway between 0.30 and 0.20. Label 1 has no positive: 0.5. Label 2: a clean cut between 0.6 and
    0.9."""
    labels = np.array([[1, 0, 1], [1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    probabilities = np.array([[0.30, 0.1, 0.9], [0.35, 0.2, 0.95], [0.10, 0.3, 0.6], [0.20, 0.4, 0.1],
                              [0.32, 0.2, 0.2]])
    assert tune_thresholds(labels, probabilities) == pytest.approx([0.25, 0.5, 0.75])
    scorer = Scorer(tasks.MULTI_LABEL, ["a", "b", "c"])
    logits = np.log(probabilities / (1 - probabilities))
    scorer.tune(labels, logits)  # validation
    test = scorer.metrics(labels, scorer.scores(logits))
    assert test["thresholds"] == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.75})
    assert test["per_label"]["a"]["f1"] == pytest.approx(0.8)
    fixed = Scorer(tasks.MULTI_LABEL, ["a", "b", "c"], threshold=0.5)
    fixed.tune(labels, logits)
    assert list(fixed.thresholds) == [0.5, 0.5, 0.5]


def test_scaled_targets_are_standardised_on_train_and_mapped_back():
    data = _prepare(_raw([float(i % 10) + 0.5 for i in range(100)]), label_scaling=True)
    train = np.asarray(data.splits["train"]["label"])
    mean, std = data.task.label_scaling
    assert abs(train.mean()) < 1e-6 and train.std() == pytest.approx(1.0, rel=1e-5)
    raw_test = np.asarray(data.splits["test"]["label"]) * std + mean
    assert np.allclose(raw_test % 1, 0.5)  # back on the targets' own scale
    scorer = Scorer(tasks.REGRESSION, ["label"], scaling=(mean, std))
    assert scorer.scores(np.array([[0.0], [1.0]]))[:, 0] == pytest.approx([mean, mean + std])
    metrics = scorer.metrics(scorer.labels(np.array([0.0, 1.0])), scorer.scores(np.array([[0.0], [1.0]])))
    assert metrics["mse"] == pytest.approx(0.0, abs=1e-12)


def test_example_scores_average_to_the_tasks_metric():
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 2, (200, 5)), rng.integers(0, 2, (200, 5))
    multi = example_scores(tasks.get(tasks.MULTI_LABEL), labels, predictions)
    assert multi.mean() == pytest.approx(f1_score(labels, predictions, average="samples", zero_division=1.0))
    assert np.array_equal(samples_f1(labels, predictions), multi)
    targets, outputs = rng.normal(size=200), rng.normal(size=200)
    assert example_scores(tasks.get(tasks.REGRESSION), targets, outputs).mean() == pytest.approx(
        mean_squared_error(targets, outputs))


EXAMPLES, SEEDS, SIMULATIONS = 400, 3, 150
TOLERANCE = 0.035  # two binomial standard errors of a rate near 0.05 over 150 simulations


def _squared_errors(rng: np.random.Generator, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A regression lab: each test example has a difficulty (the sd of the error of a prediction of it); each seed
    adds a bias of its own; the better group's errors are smaller by `shift` of their sd."""
    difficulty = rng.gamma(2.0, 0.5, EXAMPLES)

    def group(scale: float) -> np.ndarray:
        bias = rng.normal(0.0, 0.05, (SEEDS, 1))
        return (scale * difficulty * rng.normal(size=(SEEDS, EXAMPLES)) + bias) ** 2

    return group(1.0 - shift), group(1.0)


def _example_f1(rng: np.random.Generator, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A multi-label lab: 4 labels per example, each predicted right with a probability from the example's
    difficulty and the seed's shift; the score is the example's F1."""
    truth = rng.random((EXAMPLES, 4)) < 0.35
    difficulty = rng.normal(2.0, 1.5, (EXAMPLES, 1))

    def group(offset: float) -> np.ndarray:
        logits = difficulty + offset + rng.normal(0.0, 0.1, (SEEDS, 1, 1))
        right = rng.random((SEEDS, EXAMPLES, 4)) < 1 / (1 + np.exp(-logits))
        return np.stack([samples_f1(truth, np.where(r, truth, ~truth)) for r in right])

    return group(shift), group(0.0)


@pytest.mark.parametrize("lab, shift, lower_is_better", [(_squared_errors, 0.25, True), (_example_f1, 0.5, False)])
def test_two_level_bootstrap_on_squared_errors_and_example_f1_is_calibrated_and_has_power(lab, shift,
                                                                                           lower_is_better):
    """Null (both groups from one distribution): 'significant' at most alpha + tolerance (measured: 0.0% of 150
    pairs for squared errors, 1.3% for example F1: conservative, as the single-label test is). A real difference,
    the better group's errors 25% smaller (0.65 in MSE, about 4 seed sds) or its labels' logits 0.5 higher (0.066
    in example F1, about 4 seed sds): found, in the right direction, in 97% and 93% (at least 60% asserted; a
    verdict that read a lower MSE as worse would find none)."""
    rng = np.random.default_rng(7)
    for current, expect in ((0.0, "null"), (shift, "power")):
        hits, right_way = 0, 0
        for i in range(SIMULATIONS):
            a, b = lab(rng, current)
            result = stats.two_level_bootstrap(a, b, n_resamples=299, seed=i)
            significant = result.p <= stats.ALPHA
            hits += significant
            right_way += significant and stats.verdict(result.difference, result.p,
                                                       higher_is_better=not lower_is_better) == "better"
        if expect == "null":
            assert hits / SIMULATIONS <= stats.ALPHA + TOLERANCE
        else:
            assert right_way / SIMULATIONS >= 0.6


def test_mcnemar_only_for_single_label_runs(tmp_path):
    """Two single runs of a regression are compared with the two-level bootstrap on squared errors (one 0/1
    outcome per example, which McNemar's test needs, is a single-label run's only)."""
    from ftlab.analysis.compare import MCNEMAR, TWO_LEVEL, compare, summarise
    from ftlab.analysis.records import group_records, load_records
    import pandas as pd

    rng = np.random.default_rng(1)
    truth = rng.normal(size=60)
    for name, noise in (("good", 0.1), ("bad", 1.0)):
        run = tmp_path / name
        (run / "predictions").mkdir(parents=True)
        predicted = truth + rng.normal(0.0, noise, 60)
        pd.DataFrame({"example_id": [f"test/{i}" for i in range(60)], "label": truth,
                      "prediction": predicted}).to_parquet(run / "predictions" / "test.parquet")
        mse = float(((predicted - truth) ** 2).mean())
        record = {"output_dir": str(run), "method": name, "model": "m", "seed": 1, "group": name,
                  "config": {"data": {"dataset": "d"}, "method": {"method": "lora"}},
                  "data": {"origin": "local", "label_names": ["score"]},
                  "task": {"problem_type": tasks.REGRESSION},
                  "metrics": {"test": {"mse": mse, "pearson": 0.5}, "validation": {"mse": mse}},
                  "predictions": {"test": "predictions/test.parquet"}}
        (run / "result.json").write_text(json.dumps(record))
    summaries = {s.group.name: s for s in map(summarise, group_records(load_records(tmp_path)))}
    outcome = compare(list(summaries.values()), summaries["good"])["bad"]
    assert outcome.test == TWO_LEVEL != MCNEMAR
    assert outcome.difference > 0 and outcome.verdict == "worse"  # a larger MSE than the reference's
