"""End-to-end runs through main.py: a tiny model built in the test, and the packaged encoder on real IMDB."""
import json
import random

import numpy as np
import pytest
import yaml

from tests.conftest import NEUTRAL, run_main, synthetic_rows, write_csv

RECORD_KEYS = {"config", "metrics", "trainable_params", "total_params", "train_seconds", "train_samples_per_second",
               "peak_memory_mb"}


def assert_fits_a_terminal(proc) -> None:
    """Every line a run prints (its log, its summary, library notices) fits 100 columns."""
    wide = [line for line in (proc.stdout + proc.stderr).splitlines() if len(line) > 100]
    assert not wide, wide


def _record(output_dir):
    return json.loads((output_dir / "result.json").read_text())


# Learning rates per method for the tiny encoder (all reach 1.0 for init seeds 0-3; chance is 0.5).
TINY_LR = {"lora": "1e-2", "full": "5e-3", "head": "1e-2"}
TINY_HEAD_PARAMS = (32 * 32 + 32) + (32 * 2 + 2)  # pre_classifier + classifier at hidden size 32


@pytest.mark.parametrize("method", list(TINY_LR))
def test_tiny_model_learns_a_local_csv(method, tiny_model_dir, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    out = tmp_path / "run"
    # WANDB_MODE=offline, as cluster templates export it: with tracking off (no project) W&B says nothing. Once is
    # enough (it has nothing to do with the method), and such a run takes a new interpreter (conftest.run_main).
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                    "--label_column", "polarity", "--method", method, "--epochs", "8", "--lr", TINY_LR[method],
                    "--batch_size", "16", "--max_length", "32", "--output_dir", str(out), cwd=tmp_path,
                    env={"WANDB_MODE": "offline"} if method == "lora" else None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WANDB" not in proc.stdout + proc.stderr
    assert_fits_a_terminal(proc)
    record = _record(out)
    assert RECORD_KEYS <= set(record)
    for split in ("validation", "test"):
        assert set(record["metrics"][split]) >= {"accuracy", "precision", "recall", "f1", "confusion_matrix"}
    assert record["data"]["label_names"] == ["neg", "pos"]
    assert record["data"]["sizes"] == {"train": 320, "validation": 40, "test": 40}
    assert 0 < record["trainable_params"] <= record["total_params"]
    assert record["loss_history"] and record["train_samples_per_second"] > 0
    assert record["metrics"]["test"]["accuracy"] >= 0.95
    if method == "head":
        assert record["trainable_params"] == TINY_HEAD_PARAMS
    # The resolved config is saved and reproduces the run's settings.
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved == record["config"] and saved["method"]["method"] == method
    assert "test" in proc.stdout and "accuracy" in proc.stdout  # the printed summary table
    # The experiment's index (the run directory's parent) holds the same record, one line per run.
    index = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert index == [record]


@pytest.mark.e2e
def test_default_command_on_packaged_encoder_and_real_imdb(tmp_path):
    """`python main.py` as shipped, shrunk to CI size: the MiniLM mirror and the IMDB mirror, offline."""
    out = tmp_path / "run"
    proc = run_main("--max_train_samples", "64", "--max_eval_samples", "32", "--max_test_samples", "64",
                    "--max_length", "64", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_fits_a_terminal(proc)  # the mirror's cache path once made a line of 275 characters
    record = _record(out)
    assert RECORD_KEYS <= set(record)
    assert record["model_source"]["origin"] == "mirror"
    assert record["data"]["origin"] == "mirror"
    assert record["data"]["sizes"] == {"train": 64, "validation": 32, "test": 64}
    # MiniLM (BERT, hidden 384, 6 layers): LoRA r=8 on six linears per block + pooler + classifier.
    assert record["trainable_params"] == 480_386
    assert record["config"]["method"]["method"] == "lora"
    assert record["metrics"]["test"]["num_samples"] == 64
    # The mirror carries sentence-transformers' 1_Pooling/config.json (mean tokens): auto pools by mean.
    assert (record["pooling"]["requested"], record["pooling"]["used"]) == ("auto", "mean")


def test_three_classes_train_with_macro_f1(tiny_model_dir, tmp_path):
    # Imbalanced classes (4:2:1) plus texts with no sentiment word under a random label, which no model gets all
    # right: the test split has errors, so macro, weighted and micro F1 come apart.
    rng = random.Random(0)
    rows = synthetic_rows(630, classes=("pos",) * 4 + ("neg",) * 2 + ("neutral",))
    rows += [(" ".join(rng.choices(NEUTRAL, k=6)), rng.choice(("pos", "neg", "neutral"))) for _ in range(70)]
    data = write_csv(tmp_path / "tweets.csv", rows, header=("text", "label"))
    out = tmp_path / "run"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), "--method", "full", "--epochs", "8",
                    "--lr", "5e-3", "--max_length", "32", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = _record(out)
    assert record["data"]["label_names"] == ["neg", "neutral", "pos"]
    test = record["metrics"]["test"]
    matrix = np.array(test["confusion_matrix"])  # rows: true class, columns: predicted class
    assert matrix.shape == (3, 3) and matrix.sum() == test["num_samples"] == 70
    # Macro F1, recomputed from the confusion matrix: the mean of the three per-class F1 scores.
    true_counts, predicted_counts, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    per_class = 2 * hits / (true_counts + predicted_counts)
    weighted, micro = (per_class * true_counts).sum() / true_counts.sum(), hits.sum() / matrix.sum()
    assert test["f1"] == pytest.approx(per_class.mean(), rel=1e-9)
    # The split tells the averages apart, so the assertion above could not pass with the wrong one.
    assert min(abs(per_class.mean() - weighted), abs(per_class.mean() - micro)) > 0.01
    assert test["accuracy"] == pytest.approx(micro) and 0.8 <= test["accuracy"] < 1.0


@pytest.mark.parametrize("rows, flags, message", [
    ([("good film", "pos")] * 100, [], "the training split has a single class ('pos')"),
    ([("", "pos"), ("  ", "neg")] * 10, [], "split 'train' has no non-empty texts left"),
    (synthetic_rows(30), ["--text_column", "review"], "no text column 'review'; its columns are text, label"),
])
def test_bad_data_is_one_line_and_exit_2(rows, flags, message, tiny_model_dir, tmp_path):
    _assert_one_line_exit_2(write_csv(tmp_path / "bad.csv", rows, header=("text", "label")), flags, message,
                            tiny_model_dir, tmp_path)


def test_empty_file_is_one_line_and_exit_2(tiny_model_dir, tmp_path):
    _assert_one_line_exit_2(write_csv(tmp_path / "empty.csv", [], header=("text", "label")), [],
                            "the train split is empty (the file has no data rows)", tiny_model_dir, tmp_path)


def _assert_one_line_exit_2(data, flags, message, tiny_model_dir, tmp_path):
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), *flags,
                    "--output_dir", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "result.json").exists()
