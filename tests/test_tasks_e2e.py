"""The tasks through main.py as users run them, on a tiny model: a multi-label run and a regression on pairs of
texts (LoRA, a few steps), their baselines, the report's per-task tables, predict's label sets and numbers, and bad
input refused in one line with exit 2 before the model loads."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ftlab import tasks
from tests.conftest import NEGATIVE, NEUTRAL, POSITIVE, run_main

ROWS = 120
FLAGS = ["--max_length", "32", "--epochs", "2", "--lr", "1e-2", "--batch_size", "16", "--logging_steps", "4"]


def _rows(seed: int = 0) -> list[dict]:
    """Texts with a positive cue (label pos), a negative cue (neg), both or neither; the score counts the cues of
    the text and its second text (pos +1.5, neg -1)."""
    rng = random.Random(seed)
    rows = []
    for i in range(ROWS):
        words, labels = rng.choices(NEUTRAL, k=5), []
        if i % 3:
            words.insert(1, rng.choice(POSITIVE))
            labels.append("pos")
        if i % 2:
            words.insert(3, rng.choice(NEGATIVE))
            labels.append("neg")
        second = rng.choices(NEUTRAL, k=3) + ([rng.choice(POSITIVE)] if i % 5 < 2 else [])
        score = 1.5 * sum(w in POSITIVE for w in words + second) - sum(w in NEGATIVE for w in words)
        rows.append({"text": " ".join(words), "second": " ".join(second), "labels": labels, "score": score + 0.25})
    return rows


# One worker runs the module, so its two module fixtures (the trained runs) are built once, not once per worker.
pytestmark = pytest.mark.xdist_group("tasks_e2e")


@pytest.fixture(scope="module")
def task_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tasks")
    rows = _rows()
    with open(directory / "topics.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({"text": row["text"], "label": row["labels"]}) + "\n")
    with open(directory / "scores.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "second", "score"])
        writer.writerows([row["text"], row["second"], row["score"]] for row in rows)
    return directory


@pytest.fixture(scope="module")
def task_runs(task_files: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("task-runs")
    runs = [("multi", ["--dataset", str(task_files / "topics.jsonl"), "--method", "lora"]),
            ("pairs", ["--dataset", str(task_files / "scores.csv"), "--text_pair_column", "second",
                       "--label_column", "score", "--label_scaling", "--method", "lora"])]
    for name, args in runs:
        for command in ("train", "baseline"):
            # fp32: predict's scores are compared with the run's own to 1e-4, and on a CPU with bf16 units the run
            # would evaluate under bf16 autocast (agreeing to bf16's 3 digits only), as test_predict's runs do.
            precision = ["--precision", "fp32"] if command == "train" else []
            proc = run_main(command, "--model", str(tiny_model_dir), *args, *FLAGS, *precision, "--output_dir",
                            str(results / f"{name}_{command}"), cwd=results)
            assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def test_a_multi_label_run_infers_its_task_and_scores_label_sets(task_runs: Path):
    record = json.loads((task_runs / "multi_train" / "result.json").read_text())
    assert record["task"]["problem_type"] == tasks.MULTI_LABEL and record["task"]["inferred"]
    assert record["task"]["reason"] == "column 'label' holds lists"
    test = record["metrics"]["test"]
    assert set(test["per_label"]) == {"neg", "pos"} and set(test["thresholds"]) == {"neg", "pos"}
    assert test["samples_f1"] >= 0.8  # the cue words are learnable in a few steps
    config = json.loads((task_runs / "multi_train" / "model" / "config.json").read_text())
    assert config["problem_type"] == tasks.MULTI_LABEL
    assert config["ftlab_thresholds"] == [test["thresholds"]["neg"], test["thresholds"]["pos"]]
    frame = pd.read_parquet(task_runs / "multi_train" / "predictions" / "test.parquet")
    assert {"label_neg", "label_pos", "prediction_neg", "prediction_pos", "p_neg", "p_pos"} <= set(frame.columns)
    baseline = json.loads((task_runs / "multi_baseline" / "result.json").read_text())
    assert baseline["model"] == "tfidf(1,2)+one_vs_rest_linear_svm" and "samples_f1" in baseline["metrics"]["test"]


def test_a_regression_on_pairs_maps_its_predictions_back_to_the_targets_scale(task_runs: Path, task_files: Path):
    record = json.loads((task_runs / "pairs_train" / "result.json").read_text())
    assert record["task"]["problem_type"] == tasks.REGRESSION and record["task"]["label_scaling"]["std"] > 0
    assert record["pairs"]["template"] == "[CLS] A [SEP] B [SEP]"
    frame = pd.read_parquet(task_runs / "pairs_train" / "predictions" / "test.parquet")
    source = pd.read_csv(task_files / "scores.csv")
    rows = [int(example.split("/")[1]) for example in frame["example_id"]]
    # The file's labels are the CSV's own scores, and the recorded MSE is that of the file's predictions.
    assert np.allclose(frame["label"], source["score"].iloc[rows], atol=1e-5)
    assert record["metrics"]["test"]["mse"] == pytest.approx(float(((frame["prediction"] - frame["label"]) ** 2)
                                                                   .mean()), rel=1e-5)
    baseline = json.loads((task_runs / "pairs_baseline" / "result.json").read_text())
    assert baseline["model"] == "tfidf(1,2)_pairs+ridge"


def test_the_report_has_a_table_per_task_with_its_metrics(task_runs: Path):
    proc = run_main("report", str(task_runs), cwd=task_runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (task_runs / "report.md").read_text()
    assert "## Multi-label (F1 (examples)" in text and "## Regression (MSE" in text
    assert "| test F1 (examples) |" in text and "| test MSE |" in text and "| test Pearson |" in text
    assert "McNemar" not in text.split("## Multi-label")[1]  # single runs of these tasks: the bootstrap
    assert "test F1 (examples) [95% CI]" in proc.stdout and "test MSE [95% CI]" in proc.stdout


def test_predict_gives_a_label_set_and_a_number(task_runs: Path, task_files: Path):
    labelled = task_runs / "labels.jsonl"
    proc = run_main("predict", "--model_dir", str(task_runs / "multi_train"), "good film and awful plot",
                    "the film", "--output", str(labelled), cwd=task_runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cued, plain = [json.loads(line) for line in labelled.read_text().splitlines()]
    thresholds = dict(zip(("neg", "pos"), json.loads((task_runs / "multi_train" / "model" / "config.json")
                                                     .read_text())["ftlab_thresholds"]))
    for record in (cued, plain):  # the set is every label at or above the threshold the run tuned on validation
        probabilities = record["probabilities"]
        assert record["labels"] == [name for name in ("neg", "pos") if probabilities[name] >= thresholds[name]]
    assert cued["probabilities"]["pos"] > plain["probabilities"]["pos"]  # the cue the few steps learn best
    lines = proc.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [",".join(f"{name}:{record['probabilities'][name]:.2f}"
                                                                for name in record["labels"]) or "(none)"
                                                       for record in (cued, plain)]
    output = task_runs / "scores.jsonl"
    proc = run_main("predict", "--model_dir", str(task_runs / "pairs_train"), "--file",
                    str(task_files / "scores.csv"), "--text_pair_column", "second", "--output", str(output),
                    cwd=task_runs)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = [json.loads(line)["score"] for line in output.read_text().splitlines()]
    targets = pd.read_csv(task_files / "scores.csv")["score"].to_numpy()
    assert len(scores) == ROWS and np.corrcoef(scores, targets)[0, 1] > 0.5
    # On the targets' scale, not z-scores (their mean is 0), and the numbers the run wrote for its test texts.
    assert abs(np.mean(scores) - targets.mean()) < 0.5 * targets.std()
    frame = pd.read_parquet(task_runs / "pairs_train" / "predictions" / "test.parquet")
    rows = [int(example.split("/")[1]) for example in frame["example_id"]]
    assert np.allclose(np.array(scores)[rows], frame["prediction"], atol=1e-4)
    refused = run_main("predict", "--model_dir", str(task_runs / "pairs_train"), "one text", cwd=task_runs)
    assert refused.returncode == 2 and "trained on pairs of texts" in refused.stderr


@pytest.mark.parametrize("args, message", [
    (["--dataset", "scores.csv", "--label_column", "score", "--class_weights", "balanced"],
     "error: --class_weights balanced: a regression has no classes to weigh (inferred: column 'score' holds numbers "
     "with fractions); use it with single_label or multi_label"),
    (["--dataset", "scores.csv", "--label_column", "score", "--text_pair_column", "hypothesis"],
     "error: --dataset scores.csv: split 'train' has no text pair column 'hypothesis'; its columns are text, second, "
     "score (choose with --text_pair_column)"),
    (["--dataset", "scores.csv", "--label_column", "score", "--problem_type", "regression", "--threshold", "0.4"],
     "error: --threshold 0.4: only multi-label runs threshold their labels, this run is regression (--problem_type)"),
])
def test_bad_input_is_one_line_and_exit_2_before_the_model_loads(args, message, task_files, tiny_model_dir):
    proc = run_main("--model", str(tiny_model_dir), *args, *FLAGS, cwd=task_files)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == message
    assert "trainable of" not in proc.stdout + proc.stderr  # no model was built
