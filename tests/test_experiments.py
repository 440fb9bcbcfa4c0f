"""The sweep scripts in experiments/: run lists for job arrays, one run by index, overrides, and the smoke suite."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_report import PNG_MAGIC, table_rows

SUITES = {"experiments_1": 5, "experiments_2": 2, "imdb_methods": 6, "lora_rank": 4, "study": 14}


def run_suite(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, **env}
    for unset in ("RUN_INDEX", "SLURM_ARRAY_TASK_ID", "LIST_RUNS", "SIZE", "MODEL", "RESULTS", "SEEDS",
                  "FTLAB_STOP_FILE"):
        if unset not in env:
            full_env.pop(unset, None)
    return subprocess.run(["bash", str(ROOT / "experiments" / f"{name}.sh")], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("suite, count", SUITES.items())
def test_list_runs_prints_index_and_name_per_run(suite, count, tmp_path):
    proc = run_suite(suite, tmp_path, LIST_RUNS="1")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split("\t") for line in proc.stdout.splitlines()]
    assert [int(index) for index, _ in lines] == list(range(count))
    assert len({name for _, name in lines}) == count  # names are distinct: each run gets its own directory
    assert not (tmp_path / "runs").exists()  # listing runs nothing


@pytest.mark.parametrize("seeds", ["1,2", "2"])  # a list, or a count: 2 = seeds 1 and 2
def test_seeds_list_one_run_per_seed_and_the_baseline_once(seeds, tmp_path):
    proc = run_suite("imdb_methods", tmp_path, LIST_RUNS="1", SEEDS=seeds)
    assert proc.returncode == 0, proc.stderr
    assert [line.split("\t") for line in proc.stdout.splitlines()] == [
        [str(i), name] for i, name in enumerate(["raw/seed1", "raw/seed2", "svm", "full/seed1", "full/seed2",
                                                 "head/seed1", "head/seed2", "lora/seed1", "lora/seed2",
                                                 "qlora/seed1", "qlora/seed2"])]


def test_array_task_id_runs_one_run_and_a_finished_run_is_skipped(tmp_path):
    results = tmp_path / "sweep"
    proc = run_suite("experiments_1", tmp_path, SLURM_ARRAY_TASK_ID="0", RESULTS=str(results))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in results.iterdir()) == ["index.jsonl", "svm"]  # run 0 only, no report
    [record] = [json.loads(line) for line in (results / "index.jsonl").read_text().splitlines()]
    assert record["method"] == "tfidf_svm" and record["config"]["data"]["dataset"] == "rotten_tomatoes"
    assert record["data"]["sizes"] == {"train": 64, "validation": 32, "test": 64}  # SIZE=smoke by default

    again = run_suite("experiments_1", tmp_path, RUN_INDEX="0", SLURM_ARRAY_TASK_ID="3", RESULTS=str(results))
    assert again.returncode == 0 and "svm: finished before" in again.stdout  # RUN_INDEX wins over the array id
    assert len((results / "index.jsonl").read_text().splitlines()) == 1


def test_model_override_and_a_seed_reach_the_runs_and_an_interrupted_run_resumes(tiny_model_dir, tmp_path):
    results = tmp_path / "sweep"
    # With SEEDS=1,2 the runs are svm, full/seed1, full/seed2, ...: task 2 is the second seed of `full`.
    settings = dict(RUN_INDEX="2", MODEL=str(tiny_model_dir), RESULTS=str(results), SEEDS="1,2")
    # A stop request (the file the SLURM templates create on SLURM's warning signal) ends the run after its first
    # step with a checkpoint, and the suite with the run's "interrupted" status.
    (tmp_path / "stop").touch()
    stopped = run_suite("experiments_1", tmp_path, FTLAB_STOP_FILE=str(tmp_path / "stop"), **settings)
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert not (results / "full" / "seed2" / "result.json").exists()
    # Run again, the suite continues that run rather than skipping or restarting it.
    proc = run_suite("experiments_1", tmp_path, **settings)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (results / "full").iterdir()) == ["index.jsonl", "seed2"]
    record = json.loads((results / "full" / "seed2" / "result.json").read_text())
    assert record["seed"] == 2 and record["config"]["run"]["seed"] == 2
    assert (Path(record["resumed_from"]).name, record["attempts"]) == ("checkpoint-1", 2)
    assert record["model"] == str(tiny_model_dir) and record["method"] == "full"
    assert record["config"]["data"]["max_length"] == 64 and record["config"]["optim"]["epochs"] == 1


@pytest.mark.parametrize("env, message", [
    ({"RUN_INDEX": "5"}, "error: RUN_INDEX=5: must be an integer from 0 to 4"),
    ({"RUN_INDEX": "first"}, "error: RUN_INDEX=first: must be an integer from 0 to 4"),
    ({"SIZE": "huge"}, "error: SIZE=huge: must be smoke, small, default, medium or full"),
    ({"SEEDS": "1,x"},
     "error: SEEDS=1,x: must be a number of seeds (3 = seeds 1,2,3) or comma-separated seeds (1,5,9)"),
])
def test_bad_suite_settings_are_one_line_and_exit_2(env, message, tmp_path):
    proc = run_suite("experiments_1", tmp_path, **env)
    assert proc.returncode == 2 and proc.stderr.strip() == message + (
        " (LIST_RUNS=1 lists the runs)" if "RUN_INDEX" in env else "")


def test_sst2_suite_stops_offline_with_ftlabs_message(tmp_path):
    proc = run_suite("experiments_2", tmp_path)
    assert proc.returncode == 2
    assert "error: --dataset sst2: the hub is unreachable" in proc.stderr
    assert "SST-2 has no offline mirror" in proc.stderr
    assert not list(tmp_path.rglob("report.md"))  # the suite stopped at its first run


@pytest.mark.e2e
def test_smoke_suite_runs_offline_then_reports(tmp_path):
    """The issue's must-show: `SIZE=smoke bash experiments/experiments_1.sh` on the packaged encoder and the Rotten
    Tomatoes mirror, then the report's table and PNGs."""
    start = time.perf_counter()
    proc = run_suite("experiments_1", tmp_path, SIZE="smoke")
    print(f"experiments_1 smoke: {time.perf_counter() - start:.0f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "runs" / "experiments_1-smoke"
    rows = table_rows((results / "report.md").read_text())
    assert sorted(row[0] for row in rows) == ["full", "lora-r16-a16", "lora-r16-a32", "lora-r8-a16", "svm"]
    assert {row[3] for row in rows} == {"rotten_tomatoes"}
    # Each configuration's row holds its figures: one seed, its trainable parameters, validation accuracy, test
    # accuracy and F1 (the 95% CI needs prediction files, which every run writes).
    for row in rows:
        assert row[4] == "1" and int(row[5].replace(",", "")) > 0, row
        assert all(0.0 <= float(value) <= 1.0 for value in row[6:9]), row
        low, high = map(float, row[9].split("–"))
        assert low <= float(row[7]) <= high, row
    params = {row[0]: int(row[5].replace(",", "")) for row in rows}
    assert params["lora-r8-a16"] < params["lora-r16-a16"] == params["lora-r16-a32"] < params["full"]
    for name in ("loss_curves", "accuracy_vs_params", "train_time"):
        png = (results / f"experiments_1-smoke_{name}.png").read_bytes()  # beside the report, not in img/
        assert png[:8] == PNG_MAGIC and len(png) > 10_000
