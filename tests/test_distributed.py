"""Two CPU processes through the real `accelerate launch` (gloo) against one plain process, on the same data."""
import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import ROOT, free_port, run_main, synthetic_rows, write_csv

pytestmark = pytest.mark.distributed


def accelerate_launch(num_processes: int, *args: str, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    """`accelerate launch` with the shipped multi-GPU config, as users run it (without CUDA: CPU processes)."""
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(ROOT / "scripts" / "accelerate" / "multi_gpu.yaml"),
               "--num_processes", str(num_processes), "--main_process_port", str(free_port()),
               str(ROOT / "main.py"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_two_processes_match_one_and_write_one_record(tiny_model_dir, tmp_path):
    # 410 rows: splits of 328/41/41, so 2 processes get uneven evaluation shards and the padding duplicate that
    # evens them out must be dropped for num_samples to equal 41.
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(410))
    flags = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
             "--label_column", "polarity", "--method", "lora", "--epochs", "8", "--lr", "1e-2",
             "--batch_size", "16", "--max_length", "32", "--logging_steps", "1"]
    start = time.perf_counter()
    one = run_main(*flags, "--output_dir", str(tmp_path / "one" / "run"), cwd=tmp_path,
                   env={"OMP_NUM_THREADS": "1"})
    one_seconds = time.perf_counter() - start
    assert one.returncode == 0, one.stderr[-3000:]
    (tmp_path / "two").mkdir()
    start = time.perf_counter()
    # No --output_dir: the default name carries the start time, which both processes must agree on.
    two = accelerate_launch(2, *flags, "--wandb_project", "ftlab-test", "--wandb_mode", "offline",
                            cwd=tmp_path / "two")
    two_seconds = time.perf_counter() - start
    assert two.returncode == 0, two.stderr[-3000:]
    print(f"1 process {one_seconds:.1f} s, 2 processes {two_seconds:.1f} s (wall, with start-up)")

    single = json.loads((tmp_path / "one" / "run" / "result.json").read_text())
    records = list((tmp_path / "two").rglob("result.json"))
    assert len(records) == 1, records  # one directory, one record: not one per process
    double = json.loads(records[0].read_text())
    index = (records[0].parent.parent / "index.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in index] == [double]
    assert two.stdout.count("record: ") == 1  # the summary, printed by the main process only
    # One W&B run, opened by the main process.
    assert len(list((tmp_path / "two").rglob("offline-run-*/run-*.wandb"))) == 1
    assert double["tracking"]["mode"] == "offline"

    assert single["distributed"]["world_size"] == 1
    assert double["distributed"]["world_size"] == 2
    assert double["distributed"]["backend"] == "gloo"
    assert double["distributed"]["global_train_batch_size"] == 32  # --batch_size is per process
    # The processes trained together: half the optimizer steps of one process (each took a shard of a batch).
    single_steps, double_steps = single["loss_history"][-1]["step"], double["loss_history"][-1]["step"]
    assert (single_steps, double_steps) == (8 * 21, 8 * 11)
    for split in ("validation", "test"):
        # Every example scored exactly once, gathered from both processes.
        assert double["metrics"][split]["num_samples"] == double["data"]["sizes"][split] == 41
        assert sum(map(sum, double["metrics"][split]["confusion_matrix"])) == 41
        # Per-example predictions gathered from both processes and written once, in the split's order.
        one_file = pd.read_parquet(tmp_path / "one" / "run" / single["predictions"][split])
        two_file = pd.read_parquet(records[0].parent / double["predictions"][split])
        assert two_file["example_id"].tolist() == one_file["example_id"].tolist() and len(two_file) == 41
        assert (two_file["prediction"] == two_file["label"]).mean() == double["metrics"][split]["accuracy"]
    assert abs(double["metrics"]["test"]["accuracy"] - single["metrics"]["test"]["accuracy"]) <= 0.01
    assert double["metrics"]["test"]["accuracy"] >= 0.95
