"""The sbatch templates, submitted with the real `sbatch` to a real one-node SLURM brought up on this machine.

scripts/slurm/local_cluster.sh installs slurm-wlm if it is missing (root only), starts munge, slurmctld and slurmd
with everything under a temporary directory, and waits for the node to be idle. Where that cannot be done the
tests are skipped with the failing step and its log, never run against a stand-in; with FTLAB_REQUIRE_INFRA=1
(set by .ci/run) they fail with it instead.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SLURM_ENDED, sbatch, slurm_records, synthetic_rows, wait_for_slurm_job, write_csv

# One worker runs every test that uses the local SLURM (the `slurm` xdist group), so one cluster serves them all.
pytestmark = [pytest.mark.distributed, pytest.mark.xdist_group("slurm")]
SLURM = ROOT / "scripts" / "slurm"


def _finish(env: dict, job_id: str, cwd: Path) -> str:
    code = wait_for_slurm_job(env, job_id, timeout=300)
    logs = "\n".join(path.read_text() for path in sorted(cwd.glob("job-*.out")))
    assert code == 0, f"job {job_id} exited {code}\n{logs[-4000:]}"
    return logs


def test_single_and_multi_node_templates_run_a_training_job(slurm_env, tiny_model_dir, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    flags = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
             "--label_column", "polarity", "--method", "lora", "--epochs", "8", "--lr", "1e-2",
             "--batch_size", "16", "--max_length", "32"]
    jobs = {}
    for template, extra in (("single_node", []), ("multi_node", ["--nodes=1"])):
        # The arguments after the script are main.py's; the allocation has no GPU, so one CPU process each.
        cwd = tmp_path / template
        cwd.mkdir()
        jobs[template] = (sbatch(slurm_env, "--chdir", str(cwd), "--output", str(cwd / "job-%j.out"), *extra,
                                 str(SLURM / f"{template}.sbatch"), *flags, "--output_dir", str(cwd / "exp" / "run"),
                                 cwd=cwd), cwd)
    for template, (job_id, cwd) in jobs.items():
        logs = _finish(slurm_env, job_id, cwd)
        assert "WANDB_MODE=offline" in logs and "1 process(es) per node" in logs
        record = json.loads((cwd / "exp" / "run" / "result.json").read_text())
        assert record["distributed"]["world_size"] == 1
        assert record["metrics"]["test"]["num_samples"] == record["data"]["sizes"]["test"] == 40
        assert record["metrics"]["test"]["accuracy"] >= 0.95
        assert len((cwd / "exp" / "index.jsonl").read_text().splitlines()) == 1


SUITE = """\
# A stand-in experiment suite with the suites' interface: LIST_RUNS=1 lists one line per run, RUN_INDEX=N runs
# the N-th only. Its run 1 is interrupted on its first attempt, as an ftlab run stopped by a signal reports it.
runs=(alpha beta gamma)
if [[ -n "${LIST_RUNS:-}" ]]; then printf '%s\\n' "${runs[@]}"; exit 0; fi
attempt=$(( ${SLURM_RESTART_COUNT:-0} + 1 ))
echo "${runs[$RUN_INDEX]} $SLURM_ARRAY_TASK_ID $WANDB_MODE $(command -v python)" > "$SUITE_OUT/ran-$RUN_INDEX-$attempt"
if [[ $RUN_INDEX == 1 && $attempt == 1 ]]; then exit 75; fi
"""


def test_array_runs_each_suite_configuration_once(slurm_env, tmp_path):
    suite = tmp_path / "suite.sh"
    suite.write_text(SUITE)
    submitted = subprocess.run(["bash", str(SLURM / "submit_array.sh"), str(suite), "--parsable", "--chdir",
                                str(tmp_path), "--output", str(tmp_path / "job-%A_%a.out")],
                               env={**slurm_env, "SUITE_OUT": str(tmp_path)}, cwd=tmp_path, capture_output=True,
                               text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    array_job = submitted.stdout.strip().split(";")[0]
    assert wait_for_slurm_job(slurm_env, array_job, timeout=120) == 0
    ran = sorted(path.name for path in tmp_path.glob("ran-*"))
    # The array was sized from LIST_RUNS: 3 runs, 3 tasks; the interrupted task was requeued and ran again.
    assert ran == ["ran-0-1", "ran-1-1", "ran-1-2", "ran-2-1"]
    python_dir = str(Path(sys.executable).parent)
    for index, name in enumerate(("alpha", "beta", "gamma")):
        assert (tmp_path / f"ran-{index}-1").read_text().split() == [
            name, str(index), "offline", str(Path(python_dir) / "python")]
    assert "requeueing job" in (tmp_path / f"job-{array_job}_1.out").read_text()


# --- preemption and time limits ---------------------------------------------------------------------------------

def _job(env: dict, job: str) -> dict[str, str]:
    [record] = slurm_records(env, job)
    return record


def _wait_for(condition, what: str, log: Path, timeout: float = 240, ended=lambda: False) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        tail = log.read_text()[-4000:] if log.exists() else "(none)"
        assert not ended(), f"the job ended before {what}; its log:\n{tail}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}; the job's log:\n{tail}"
        time.sleep(0.3)


def test_time_limit_and_scancel_checkpoint_requeue_and_resume_to_the_uninterrupted_result(slurm_env, tiny_model_dir,
                                                                                          tmp_path):
    """SLURM's warning ahead of the time limit, then `scancel --signal=USR1`: each time the job saves a
    checkpoint, requeues itself and resumes, and the third attempt ends with the uninterrupted run's result."""
    # The warning is due as the job starts (60 s before its 1-minute limit), and SLURM looks for due warnings
    # every 30 s, so it comes within the first 30 s; the run must outlast that on a fast machine too. 960
    # training rows x 60 epochs = 3,600 steps: about 50 s where 1,200 steps took 18 s and ended unwarned.
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(1200))
    flags = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
             "--label_column", "polarity", "--method", "lora", "--epochs", "60", "--lr", "2e-3",
             "--batch_size", "16", "--max_length", "32", "--logging_steps", "50", "--save_steps", "600"]
    run = tmp_path / "exp" / "run"
    job_id = sbatch(slurm_env, "--chdir", str(tmp_path), "--output", str(tmp_path / "job.out"), "--time=1",
                    "--signal=B:USR1@60", str(SLURM / "single_node.sbatch"), *flags, "--output_dir", str(run),
                    cwd=tmp_path)
    log = tmp_path / "job.out"

    # The same configuration, uninterrupted, while the job runs.
    reference = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *flags, "--output_dir",
                                  str(tmp_path / "whole")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})

    _wait_for(lambda: _job(slurm_env, job_id).get("Restarts") == "1", "the requeue after the warning signal", log,
              ended=lambda: _job(slurm_env, job_id).get("JobState") == "COMPLETED")
    first = [path.name for path in run.glob("checkpoint-*")]
    assert len(first) == 1 and not (run / "result.json").exists()
    # Every attempt of the job is warned alike, within 30 s of its start; a longer limit (an administrator's
    # `scontrol update`) lets the next attempts run.
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=10"], env=slurm_env, check=True, timeout=30)

    _wait_for(lambda: log.exists() and "attempt 2: resuming from" in log.read_text(), "the second attempt", log)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job_id], env=slurm_env, check=True, timeout=30)
    _wait_for(lambda: _job(slurm_env, job_id).get("Restarts") == "2", "the requeue after scancel", log)
    _wait_for(lambda: _job(slurm_env, job_id).get("JobState") in SLURM_ENDED,
              "the job to end", log)

    text = log.read_text()
    assert _job(slurm_env, job_id)["JobState"] == "COMPLETED", text[-4000:]
    assert text.count("[ftlab-slurm] SIGUSR1 at") == 2 and text.count("requeueing job") == 2
    assert "[ftlab-slurm] job {0} attempt 3".format(job_id) in text
    record = json.loads((run / "result.json").read_text())
    assert record["attempts"] == 3  # = SLURM_RESTART_COUNT + 1
    stopped_at = [int(name.split("-")[1]) for name in first]
    assert int(Path(record["resumed_from"]).name.split("-")[1]) > stopped_at[0]
    assert len((run.parent / "index.jsonl").read_text().splitlines()) == 1  # interrupted attempts wrote no record

    assert reference.wait(timeout=300) == 0, reference.stderr.read()[-3000:]
    whole = json.loads((tmp_path / "whole" / "result.json").read_text())
    for split in ("validation", "test"):
        assert record["metrics"][split]["accuracy"] == whole["metrics"][split]["accuracy"]
        assert record["metrics"][split]["loss"] == pytest.approx(whole["metrics"][split]["loss"], rel=1e-5)
