"""The suite's own set-up: `make test`'s --dist loadgroup sends every test of an xdist_group to one worker.

The SLURM tests share one local cluster per worker and the tests of a group share a module's fixtures; if the
grouping silently stops (pytest 9.2 with pytest-xdist 3.8 keeps the node id where xdist's group suffix no longer
reaches), two workers start two clusters whose job ids, and so their jobs' stop files, collide.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

GROUPED = '''
import json, os, pytest

@pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    with open(os.environ["WORKERS_FILE"], "a") as handle:
        handle.write(json.dumps([i, os.environ["PYTEST_XDIST_WORKER"]]) + "\\n")

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    pass
'''


def test_loadgroup_runs_a_group_on_one_worker(tmp_path: Path):
    (tmp_path / "test_sample.py").write_text(GROUPED)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # none of the project's settings or conftest
    workers = tmp_path / "workers.jsonl"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p",
                           "no:cacheprovider", "test_sample.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "WORKERS_FILE": str(workers)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    ran = [json.loads(line) for line in workers.read_text().splitlines()]
    assert sorted(i for i, _ in ran) == list(range(6))
    assert len({worker for _, worker in ran}) == 1, ran
