"""End-to-end runs through main.py: a tiny model built in the test, and the packaged encoder on real IMDB."""
import json

import pytest
import yaml

from tests.conftest import run_main, synthetic_rows, write_csv

RECORD_KEYS = {"config", "metrics", "trainable_params", "total_params", "train_seconds", "train_samples_per_second",
               "peak_memory_mb"}


def _record(output_dir):
    return json.loads((output_dir / "result.json").read_text())


# Tiny-model learning rates found by a sweep; chance is 0.5. The head alone cannot separate the classes on a
# random 2-layer encoder, so for it we check that exactly the head trained.
TINY_RUNS = {"lora": ("1e-2", 0.85), "full": ("5e-3", 0.95), "head": ("1e-2", None)}
TINY_HEAD_PARAMS = (32 * 32 + 32) + (32 * 2 + 2)  # pre_classifier + classifier at hidden size 32


@pytest.mark.parametrize("method", list(TINY_RUNS))
def test_tiny_model_learns_a_local_csv(method, tiny_model_dir, tmp_path):
    lr, min_accuracy = TINY_RUNS[method]
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    out = tmp_path / "run"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                    "--label_column", "polarity", "--method", method, "--epochs", "8", "--lr", lr,
                    "--batch_size", "16", "--max_length", "32", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = _record(out)
    assert RECORD_KEYS <= set(record)
    for split in ("validation", "test"):
        assert set(record["metrics"][split]) >= {"accuracy", "precision", "recall", "f1", "confusion_matrix"}
    assert record["data"]["label_names"] == ["neg", "pos"]
    assert record["data"]["sizes"] == {"train": 320, "validation": 40, "test": 40}
    assert 0 < record["trainable_params"] <= record["total_params"]
    assert record["loss_history"] and record["train_samples_per_second"] > 0
    if min_accuracy is None:
        assert record["trainable_params"] == TINY_HEAD_PARAMS
    else:
        assert record["metrics"]["test"]["accuracy"] >= min_accuracy
    # The resolved config is saved and reproduces the run's settings.
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved == record["config"] and saved["method"]["method"] == method
    assert "test" in proc.stdout and "accuracy" in proc.stdout  # the printed summary table


@pytest.mark.e2e
def test_default_command_on_packaged_encoder_and_real_imdb(tmp_path):
    """`python main.py` as shipped, shrunk to CI size: the MiniLM mirror and the IMDB mirror, offline."""
    out = tmp_path / "run"
    proc = run_main("--max_train_samples", "64", "--max_eval_samples", "32", "--max_test_samples", "64",
                    "--max_length", "64", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = _record(out)
    assert RECORD_KEYS <= set(record)
    assert record["model_source"]["origin"] == "mirror"
    assert record["data"]["origin"] == "mirror"
    assert record["data"]["sizes"] == {"train": 64, "validation": 32, "test": 64}
    # MiniLM (BERT, hidden 384, 6 layers): LoRA r=8 on six linears per block + pooler + classifier.
    assert record["trainable_params"] == 480_386
    assert record["config"]["method"]["method"] == "lora"
    assert record["metrics"]["test"]["num_samples"] == 64
