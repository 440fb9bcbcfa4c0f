"""The TF-IDF + linear SVM baseline and --eval_only: same splits, same record shape as fine-tuning."""
import json
import time

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_main, synthetic_rows, write_csv

SPLIT_KEYS = {"accuracy", "precision", "recall", "f1", "confusion_matrix", "num_samples"}


def _csv(tmp_path):
    return write_csv(tmp_path / "reviews.csv", synthetic_rows(400))


def _data_flags(data):
    return ["--dataset", str(data), "--text_column", "sentence", "--label_column", "polarity"]


@pytest.mark.parametrize("command", [["baseline"], ["--check_baseline"], ["--check_baseLine"]])
def test_baseline_learns_a_local_csv_and_writes_the_record(command, tmp_path):
    data = _csv(tmp_path)
    out = tmp_path / "svm"
    proc = run_main(*command, *_data_flags(data), "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "result.json").read_text())
    assert record["method"] == "tfidf_svm" and record["model"] == "tfidf(1,2)+linear_svm"
    # The same splits a fine-tuning run on this file gets (test_train_e2e asserts 320/40/40 there).
    assert record["data"]["sizes"] == {"train": 320, "validation": 40, "test": 40}
    for split in ("validation", "test"):
        assert SPLIT_KEYS <= set(record["metrics"][split])
        assert sum(map(sum, record["metrics"][split]["confusion_matrix"])) == 40
    assert record["metrics"]["test"]["accuracy"] >= 0.95  # one sentiment word per text: linearly separable
    # Two classes: one weight per n-gram feature plus one bias.
    assert record["trainable_params"] == record["total_params"] > 1
    assert record["train_tokens_per_second"] is None and record["loss_history"] == []
    assert record["train_seconds"] > 0 and record["peak_memory_mb"] > 0
    assert "tfidf_svm | tfidf(1,2)+linear_svm" in proc.stdout  # the summary table is printed
    assert record["seed"] == 42 and len(record["group"]) == 12
    frame = pd.read_parquet(out / record["predictions"]["test"])
    assert list(frame.columns) == ["example_id", "label", "prediction", "score_neg", "score_pos"]
    # Two classes: LinearSVC's one decision function d, written as -d and d; positive d predicts "pos".
    np.testing.assert_array_equal(frame["score_neg"], -frame["score_pos"])
    assert ((frame["score_pos"] > 0).astype(int) == frame["prediction"]).all()
    assert (frame["prediction"] == frame["label"]).mean() == record["metrics"]["test"]["accuracy"]
    index = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    assert index == [record]


def test_ngram_max_sets_the_feature_space(tmp_path):
    data = _csv(tmp_path)
    counts = {}
    for n in (1, 3):
        out = tmp_path / f"svm{n}"
        proc = run_main("baseline", *_data_flags(data), "--ngram_max", str(n), "--output_dir", str(out), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        record = json.loads((out / "result.json").read_text())
        assert record["model"] == f"tfidf(1,{n})+linear_svm"
        counts[n] = record["trainable_params"]
    assert counts[3] > counts[1]  # bigrams and trigrams add features


def test_default_output_dir_names_the_baseline(tmp_path):
    data = _csv(tmp_path)
    proc = run_main("baseline", *_data_flags(data), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = [path for path in (tmp_path / "runs").iterdir() if path.is_dir()]
    assert run.name.startswith("reviews-tfidf_svm-") and (run / "result.json").is_file()


@pytest.mark.parametrize("flags, message", [
    (["--ngram_max", "0"], "--ngram_max 0: must be an integer >= 1"),
    (["--ngram_max", "two"], "'two' is not an integer >= 1"),
    (["--dataset", "imbd"], "--dataset imbd: unknown dataset"),
])
def test_bad_baseline_flags_fail_fast_with_one_line(flags, message, tmp_path):
    start = time.perf_counter()
    proc = run_main("baseline", *flags, cwd=tmp_path, fresh=True)
    assert time.perf_counter() - start < 5  # ~0.2 s: nothing heavy is imported before validation
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ") and message in proc.stderr


def test_eval_only_evaluates_the_model_as_loaded(tiny_model_dir, tmp_path):
    data = _csv(tmp_path)
    out = tmp_path / "raw"
    proc = run_main("--model", str(tiny_model_dir), *_data_flags(data), "--method", "head", "--eval_only",
                    "--max_length", "32", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "result.json").read_text())
    assert record["eval_only"] is True and record["config"]["run"]["eval_only"] is True
    assert record["train_seconds"] == 0 and record["train_samples_per_second"] == 0
    assert record["loss_history"] == []
    assert record["metrics"]["test"]["num_samples"] == 40


def test_eval_only_leaves_the_trainable_weights_unchanged(tiny_model_dir, tmp_path):
    """In process, on the real Trainer: with train=False no optimizer step is taken."""
    import torch

    from ftlab.runs.plan import plan_run
    from ftlab.data.tokenize import tokenize_splits
    from ftlab.models.load import load_classifier, load_tokenizer
    from ftlab.models.tuning import apply_method
    from ftlab.models.sources import resolve_model
    from ftlab.data.load import load_data
    from ftlab.training.trainer import build_trainer, train_and_evaluate

    cfg = plan_run(["--model", str(tiny_model_dir), *_data_flags(_csv(tmp_path)), "--method", "lora",
                      "--max_length", "32", "--lr", "1e-1"])
    source = resolve_model(cfg.model.model)
    data = load_data(cfg)
    tokenizer = load_tokenizer(source)
    tokenized = tokenize_splits(data.splits, tokenizer, cfg.data.max_length, cfg.data.pad_to_max_length)
    model = apply_method(load_classifier(source, data.label_names, cfg.method), cfg.method)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    trainer = build_trainer(model, tokenizer, tokenized, data, cfg, str(tmp_path / "run"))
    outcome = train_and_evaluate(trainer, tokenized, data, train=False)
    after = dict(trainer.model.named_parameters())
    assert before and all(torch.equal(value, after[name]) for name, value in before.items())
    assert trainer.state.global_step == 0
    assert outcome.train_seconds == 0 and outcome.loss_history == []
    assert outcome.metrics["validation"]["num_samples"] == 40


@pytest.mark.e2e
def test_svm_on_8000_imdb_mirror_reviews_reaches_the_learning_curves_figure(tmp_path):
    """8,000 reviews of the offline IMDB mirror's training split, scored on 4,000 of its test reviews: the learning
    curve study measured 0.897 at this size on the whole 24,791-review test split (0.911 on all 22,311)."""
    out = tmp_path / "svm"
    proc = run_main("baseline", "--dataset", "imdb", "--max_train_samples", "8000", "--max_test_samples", "4000",
                    "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "result.json").read_text())
    assert record["data"]["origin"] == "mirror"
    assert record["data"]["sizes"] == {"train": 8000, "validation": 250, "test": 4000}
    assert record["metrics"]["test"]["accuracy"] >= 0.88
