"""Two CPU processes through the real `accelerate launch` (gloo) against one plain process, on the same data."""
import json
import os
import signal
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
             "--label_column", "polarity", "--method", "lora", "--epochs", "8", "--lr", "3e-3",
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
    assert len(list((tmp_path / "two").rglob("offline-run-*/run-*.wandb"))) == 1, (double["tracking"],
                                                                                  two.stderr[-3000:])
    assert double["tracking"]["mode"] == "offline"

    assert single["distributed"]["world_size"] == 1
    assert double["distributed"]["world_size"] == 2
    assert double["distributed"]["backend"] == "gloo"
    assert double["distributed"]["global_train_batch_size"] == 32  # --batch_size is per process
    # The processes trained together: half the optimizer steps of one process (each took a shard of a batch).
    single_steps, double_steps = single["loss_history"][-1]["step"], double["loss_history"][-1]["step"]
    assert (single_steps, double_steps) == (8 * 21, 8 * 11)
    # The loss is each process's mean, averaged over the processes, not their sum: at the first step (the same
    # start, a batch of the same texts' kind) the two runs log about the same loss.
    first_single, first_double = single["loss_history"][0]["loss"], double["loss_history"][0]["loss"]
    assert abs(first_double - first_single) < 0.25 * first_single, (first_single, first_double)
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


def _worker_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of the training process of one rank: a child of the launcher, told apart by its RANK."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for task in os.listdir(f"/proc/{launcher.pid}/task"):
            for child in open(f"/proc/{launcher.pid}/task/{task}/children").read().split():
                try:
                    environ = open(f"/proc/{child}/environ", "rb").read().split(b"\0")
                except OSError:  # gone in the meantime
                    continue
                if f"RANK={rank}".encode() in environ:
                    return int(child)
        time.sleep(0.1)
    raise AssertionError(f"no process of rank {rank} under the launcher")


def test_a_signal_to_one_rank_stops_both_after_the_same_step_and_the_run_resumes(tiny_model_dir, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    flags = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
             "--label_column", "polarity", "--method", "lora", "--epochs", "4", "--lr", "1e-2", "--batch_size", "16",
             "--max_length", "32", "--save_steps", "5", "--output_dir", str(tmp_path / "run")]
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(ROOT / "scripts" / "accelerate" / "multi_gpu.yaml"), "--num_processes", "2",
               "--main_process_port", str(free_port()), str(ROOT / "main.py"), *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    rank_1 = _worker_pid(launcher, 1)
    deadline = time.monotonic() + 300
    while not (tmp_path / "run" / "checkpoint-5" / "trainer_state.json").exists():
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(rank_1, signal.SIGUSR1)  # rank 1 only: rank 0 learns of it at the next step end
    _, stderr = launcher.communicate(timeout=120)  # no rank waits alone for the other
    # The processes ended with "interrupted" (the launcher reports the first to exit, and fails itself).
    assert "exitcode  : 75" in stderr, stderr[-3000:]
    [checkpoint] = (tmp_path / "run").glob("checkpoint-*")
    # Each process saved its RNG state into the same step's checkpoint: both stopped after that step.
    assert sorted(path.name for path in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]
    step = json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    assert checkpoint.name == f"checkpoint-{step}" and step >= 5
    assert stderr.count(f"interrupted: stopped by a stop request on another process after step {step}") == 1

    resumed = accelerate_launch(2, *flags, "--resume", "auto", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert (record["resumed_from"], record["attempts"]) == (str(checkpoint), 2)
    assert record["loss_history"][-1]["step"] == 4 * 10  # 320 rows, 2 processes x 16 per step, 4 epochs
    assert record["metrics"]["test"]["accuracy"] >= 0.95
