"""The training loop around the Trainer: best-checkpoint selection, early stopping, collapse detection,
W&B tracking, and resuming a killed run."""
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ftlab.training.metrics import find_collapse
from tests.conftest import noisy_rows, run_main, start_main, synthetic_rows, write_csv

TINY = ("--text_column", "sentence", "--label_column", "polarity", "--max_length", "32", "--batch_size", "16")
STEPS_PER_EPOCH = 20  # 400 rows -> 320 train rows / batch 16


@pytest.fixture
def reviews(tmp_path):
    return write_csv(tmp_path / "reviews.csv", synthetic_rows(400))


def _record(output_dir: Path) -> dict:
    return json.loads((output_dir / "result.json").read_text())


# --- collapse -------------------------------------------------------------------------------------------------

def _split(matrix):
    return {"confusion_matrix": matrix, "loss": 0.7}


def test_single_class_predictions_on_a_balanced_split_are_collapse():
    problems = find_collapse([0.7, 0.69], {"test": _split([[50, 0], [50, 0]])}, ["neg", "pos"])
    assert len(problems) == 1 and "single-class predictions on test" in problems[0] and "'neg'" in problems[0]


def test_non_finite_loss_is_collapse():
    problems = find_collapse([0.7, float("nan"), float("inf")], {"test": _split([[40, 10], [10, 40]])},
                             ["neg", "pos"])
    assert problems == ["non-finite training loss (2 of 3 logged values, e.g. nan)"]


def test_a_healthy_run_or_a_skewed_split_is_not_collapse():
    assert find_collapse([0.7, 0.3], {"test": _split([[45, 5], [8, 42]])}, ["neg", "pos"]) == []
    # 90% of the true labels are one class: predicting it everywhere is poor, not a collapse.
    assert find_collapse([0.3], {"test": _split([[90, 0], [10, 0]])}, ["neg", "pos"]) == []


def test_a_collapsed_run_is_flagged_in_record_and_summary(tiny_model_dir, reviews, tmp_path):
    # Full fine-tuning at lr 5 wrecks the tiny encoder: it ends up predicting one class for everything.
    out = tmp_path / "run"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(reviews), *TINY, "--method", "full",
                    "--lr", "5", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = _record(out)
    assert record["metrics"]["test"]["accuracy"] == 0.5
    assert "single-class predictions on test" in record["collapse"]
    assert "COLLAPSED: single-class predictions" in proc.stdout


# --- best checkpoint and early stopping ------------------------------------------------------------------------

def _probabilities(checkpoint: Path, texts: list[str]) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    batch = AutoTokenizer.from_pretrained(checkpoint)(texts, padding=True, truncation=True, max_length=32,
                                                       return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.softmax(-1).numpy()


def test_early_stopping_and_load_best(tiny_model_dir, tmp_path):
    # A quarter of the labels flipped: the validation loss falls, then rises (here: best after epoch 2 of 4).
    # Patience 2 stops the run after two evaluations without a lower loss, and the test split must be scored by the
    # best epoch's model, not the last. fp32 (not the CPU's bf16 autocast), so that the checkpoints below reproduce
    # the written probabilities.
    rows = noisy_rows(400)
    data = write_csv(tmp_path / "noisy.csv", rows)
    out = tmp_path / "run"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), *TINY, "--method", "full",
                    "--lr", "5e-3", "--epochs", "10", "--load_best", "--metric_for_best", "loss",
                    "--early_stopping_patience", "2", "--save_total_limit", "3", "--precision", "fp32",
                    "--keep_checkpoints", "all", "--output_dir", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = _record(out)
    losses = [entry["loss"] for entry in record["eval_history"]]
    best = int(np.argmin(losses))
    assert record["stopped_early"] is True and len(losses) < 10
    # Stopped `patience` evaluations after the best one, which is neither the first nor the last.
    assert best == len(losses) - 3 and min(losses) < losses[0] and losses[-1] > min(losses) + 0.01
    best_checkpoint, last_checkpoint = (out / f"checkpoint-{STEPS_PER_EPOCH * epochs}"
                                        for epochs in (best + 1, len(losses)))
    assert record["best_checkpoint"] == str(best_checkpoint)
    # The test predictions the run wrote are the best checkpoint's, and not the last one's.
    tested = pd.read_parquet(out / "predictions" / "test.parquet")
    texts = [rows[int(example_id.split("/")[1])][0] for example_id in tested["example_id"]]
    written = tested[["p_neg", "p_pos"]].to_numpy()
    np.testing.assert_allclose(written, _probabilities(best_checkpoint, texts), atol=1e-5)
    assert np.abs(written - _probabilities(last_checkpoint, texts)).max() > 1e-3


# --- W&B ---------------------------------------------------------------------------------------------------------

def read_wandb_records(path: Path) -> list:
    """The records of a .wandb file: W&B's LevelDB-style log (7-byte file header, 32 KiB blocks, records with a
    crc32c/length/type header) of `Record` protobufs. wandb 0.31 writes it from its Go core and has no Python
    reader, so the test reads the format itself."""
    from wandb.proto import wandb_internal_pb2

    raw = path.read_bytes()
    assert raw[:4] == b":W&B"
    records, pending, offset, block = [], b"", 7, 32768
    while offset + 7 <= len(raw):
        if block - offset % block < 7:  # the tail of a block too short for a header is padding
            offset += block - offset % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[offset:offset + 7])
        if length == 0 and kind == 0:
            break
        pending += raw[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _logged_metrics(run_file: Path) -> list[dict]:
    rows = []
    for record in read_wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def test_wandb_falls_back_to_offline_and_logs_eval_metrics_without_secrets(tiny_model_dir, reviews, tmp_path):
    secret = "fake-wandb-key-0123456789abcdef"
    out = tmp_path / "run"
    # A key but no server (a closed local port): online must fall back to offline with one notice.
    env = {"WANDB_API_KEY": secret, "WANDB_BASE_URL": "http://127.0.0.1:9", "HOME": str(tmp_path)}
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(reviews), *TINY, "--method", "lora",
                    "--lr", "1e-2", "--epochs", "2", "--wandb_project", "ftlab-test", "--wandb_group", "g1",
                    "--output_dir", str(out), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("logging offline instead") == 1
    record = _record(out)
    assert record["tracking"]["mode"] == "offline" and record["tracking"]["project"] == "ftlab-test"
    run_dir = Path(record["tracking"]["dir"])
    (run_file,) = run_dir.glob("run-*.wandb")
    rows = _logged_metrics(run_file)
    per_epoch = [row["eval/accuracy"] for row in rows if "eval/accuracy" in row and "train/epoch" in row]
    assert len(per_epoch) >= 2  # one evaluation per epoch (plus the final one)
    assert [row["test/accuracy"] for row in rows if "test/accuracy" in row] == [
        record["metrics"]["test"]["accuracy"]]
    assert any("train/loss" in row for row in rows)
    # `wandb sync` recognises the directory as a run to upload.
    sync = subprocess.run([str(Path(sys.executable).parent / "wandb"), "sync", "--dry-run", str(run_dir)],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env}, timeout=120)
    assert sync.returncode == 0 and "Would sync 1 run" in sync.stdout + sync.stderr
    # The key is nowhere: not in the record, the run directory, the checkpoints or the console.
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in proc.stdout + proc.stderr


def test_tracking_failure_never_stops_the_run(tiny_model_dir, reviews, tmp_path):
    # W&B cannot write its run directory (a file stands where it wants a folder): the run still finishes.
    out = tmp_path / "run"
    out.mkdir()
    (out / "wandb").write_text("not a directory")
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(reviews), *TINY, "--method", "lora",
                    "--lr", "1e-2", "--wandb_project", "p", "--wandb_mode", "offline", "--output_dir", str(out),
                    cwd=tmp_path, env={"HOME": str(tmp_path), "WANDB_DIR": str(out / "wandb")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training goes on without tracking" in proc.stderr
    record = _record(out)
    assert record["tracking"] is None and record["metrics"]["test"]["accuracy"] == 1.0


# --- resume ------------------------------------------------------------------------------------------------------

def _when_complete(checkpoint: Path, proc) -> None:
    deadline = time.monotonic() + 300
    while not (checkpoint / "trainer_state.json").exists():
        assert proc.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_killed_then_terminated_run_resumes_to_the_uninterrupted_result(tiny_model_dir, reviews, tmp_path):
    args = ["--model", str(tiny_model_dir), "--dataset", str(reviews), *TINY, "--method", "lora", "--lr", "2e-3",
            "--epochs", "6", "--save_steps", "10", "--logging_steps", "5"]
    whole = run_main(*args, "--output_dir", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    # Attempt 1, killed (SIGKILL: no chance to save) mid-epoch, at step 30 of 120 (epoch 1.5).
    run = tmp_path / "exp" / "run"
    proc = start_main(*args, "--output_dir", str(run), cwd=tmp_path)
    _when_complete(run / "checkpoint-30", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "result.json").exists()

    # Attempt 2 continues from checkpoint-30; SIGTERM makes it finish its step, save it and exit with 75.
    proc = start_main(*args, "--output_dir", str(run), "--resume", "auto", cwd=tmp_path)
    _when_complete(run / "checkpoint-40", proc)
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 75, stderr[-3000:]
    [checkpoint] = run.glob("checkpoint-*")  # complete: the Trainer's own, rotated as usual
    stopped = int(checkpoint.name.split("-")[1])
    assert stopped >= 40 and (checkpoint / "trainer_state.json").exists()
    assert f"checkpoint {checkpoint} is complete; continue with the same flags and --resume auto" in stderr
    assert not (run / "result.json").exists() and not (run.parent / "index.jsonl").exists()

    resumed = run_main(*args, "--output_dir", str(run), "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _record(tmp_path / "whole"), _record(run)
    assert (b["resumed_from"], b["attempts"]) == (str(checkpoint), 3)
    for split in ("validation", "test"):
        assert b["metrics"][split]["accuracy"] == a["metrics"][split]["accuracy"]
        assert b["metrics"][split]["loss"] == pytest.approx(a["metrics"][split]["loss"], rel=1e-5)
    # The loss is logged every 5 steps, and once more at the stop; the first logging step after the stop averages
    # the steps since it. Every other logged loss is the uninterrupted run's.
    logged = {entry["step"]: entry["loss"] for entry in b["loss_history"]}
    compared = [entry for entry in a["loss_history"] if not stopped < entry["step"] < stopped + 5]
    np.testing.assert_allclose([logged[entry["step"]] for entry in compared], [e["loss"] for e in compared],
                               rtol=1e-5)
