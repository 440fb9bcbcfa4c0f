"""The sbatch templates, submitted with the real `sbatch` to a real one-node SLURM brought up on this machine.

scripts/slurm/local_cluster.sh installs slurm-wlm if it is missing (root only), starts munge, slurmctld and slurmd
with everything under a temporary directory, and waits for the node to be idle. Where that cannot be done the
tests are skipped with the failing step and its log, never run against a stand-in.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, synthetic_rows, write_csv

# One worker runs every test that uses the local SLURM (the `slurm` xdist group), so one cluster serves them all.
pytestmark = [pytest.mark.distributed, pytest.mark.xdist_group("slurm")]
SLURM = ROOT / "scripts" / "slurm"


def _submit(env: dict, cwd: Path, *args: str) -> subprocess.Popen:
    """`sbatch --wait`: returns when the job has ended, with the job's exit code."""
    return subprocess.Popen(["sbatch", "--wait", "--chdir", str(cwd), "--output", str(cwd / "job-%j.out"), *args],
                            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(job: subprocess.Popen, cwd: Path) -> str:
    output = job.communicate(timeout=300)[0]
    logs = "\n".join(path.read_text() for path in sorted(cwd.glob("job-*.out")))
    assert job.returncode == 0, f"{output}\n{logs[-4000:]}"
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
        jobs[template] = (_submit(slurm_env, cwd, *extra, str(SLURM / f"{template}.sbatch"), *flags,
                                  "--output_dir", str(cwd / "exp" / "run")), cwd)
    for template, (job, cwd) in jobs.items():
        logs = _finish(job, cwd)
        assert "WANDB_MODE=offline" in logs and "1 process(es) per node" in logs
        record = json.loads((cwd / "exp" / "run" / "result.json").read_text())
        assert record["distributed"]["world_size"] == 1
        assert record["metrics"]["test"]["num_samples"] == record["data"]["sizes"]["test"] == 40
        assert record["metrics"]["test"]["accuracy"] >= 0.95
        assert len((cwd / "exp" / "index.jsonl").read_text().splitlines()) == 1


SUITE = """\
# A stand-in experiment suite with the suites' interface: LIST_RUNS=1 lists one line per run, RUN_INDEX=N runs
# the N-th only.
runs=(alpha beta gamma)
if [[ -n "${LIST_RUNS:-}" ]]; then printf '%s\\n' "${runs[@]}"; exit 0; fi
echo "${runs[$RUN_INDEX]} $SLURM_ARRAY_TASK_ID $WANDB_MODE $(command -v python)" > "$SUITE_OUT/ran-$RUN_INDEX"
"""


def test_array_runs_each_suite_configuration_once(slurm_env, tmp_path):
    suite = tmp_path / "suite.sh"
    suite.write_text(SUITE)
    submitted = subprocess.run(["bash", str(SLURM / "submit_array.sh"), str(suite), "--wait", "--chdir",
                                str(tmp_path), "--output", str(tmp_path / "job-%A_%a.out")],
                               env={**slurm_env, "SUITE_OUT": str(tmp_path)}, cwd=tmp_path, capture_output=True,
                               text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    ran = sorted(path.name for path in tmp_path.glob("ran-*"))
    assert ran == ["ran-0", "ran-1", "ran-2"]  # the array was sized from LIST_RUNS: 3 runs, 3 tasks
    python_dir = str(Path(sys.executable).parent)
    for index, name in enumerate(("alpha", "beta", "gamma")):
        assert (tmp_path / f"ran-{index}").read_text().split() == [
            name, str(index), "offline", str(Path(python_dir) / "python")]
