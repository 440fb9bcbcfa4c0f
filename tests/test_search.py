"""`main.py search`: the space, bad input, and studies run by real workers on real SQLite and PostgreSQL storages
(and a real SLURM array), on the tiny model: every trial is a real training run."""
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from ftlab.cli import main
from ftlab.runs.plan import plan_run
from ftlab.errors import ConfigError
from ftlab.search.space import build_space, parse_spec
from tests.conftest import (ROOT, free_port, infrastructure_missing, sbatch, start_main, synthetic_rows,
                            wait_for_slurm_job, write_csv)

FINISHED = ("COMPLETE", "PRUNED")


@pytest.fixture
def flags(tiny_model_dir, tmp_path):
    """Train flags of a trial that takes seconds: 96 training rows, 6 optimizer steps."""
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(120))
    return ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
            "--label_column", "polarity", "--max_length", "32", "--batch_size", "16", "--logging_steps", "50",
            "--space", "lr=1e-4..1e-2:log", "--space", "lora_r=2,4", "--img_dir", str(tmp_path / "img")]


def _records(study_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (study_dir / "index.jsonl").read_text().splitlines()]


def _study(study_dir: Path, storage: str = None) -> optuna.Study:
    return optuna.load_study(study_name=study_dir.name, storage=storage or f"sqlite:///{study_dir / 'study.db'}")


def _assert_exactly(n: int, study_dir: Path, storage: str = None) -> list[dict]:
    """n finished trials, numbers 0..n-1, each run once: one record per trial in the index and in its directory."""
    trials = _study(study_dir, storage).get_trials()
    assert [t.number for t in trials] == list(range(n))
    assert all(t.state.name in FINISHED for t in trials), [t.state.name for t in trials]
    records = _records(study_dir)
    assert sorted(r["search"]["trial"] for r in records) == list(range(n))
    for record in records:
        trial = trials[record["search"]["trial"]]
        assert record["search"]["state"] == trial.state.name and record["search"]["params"] == trial.params
        assert Path(record["output_dir"]) == study_dir / f"trial-{trial.number}"
    return records


# --- the space and bad input (no model is loaded) -----------------------------------------------------------------

def test_space_syntax_and_the_packaged_space_file():
    assert parse_spec("lr=1e-5..1e-3:log").describe() == "lr=1e-05..0.001:log"
    lora_r = parse_spec("lora_r=4..32")
    assert (lora_r.integer, lora_r.low, lora_r.high) == (True, 4, 32)
    assert parse_spec("optimizer=adamw,sgd").choices == ("adamw", "sgd")
    assert parse_spec("use_rslora=true,false").choices == (True, False)
    space = build_space(["lora_r=8,16"], str(ROOT / "experiments" / "configs" / "search_lora.yaml"))
    assert [p.describe() for p in space.values()] == ["lr=1e-05..0.001:log", "lora_r=8,16", "warmup_ratio=0.0..0.2"]
    for spec, message in [("optimizer=adamw..sgd", "takes choices, not a range"), ("lr=0..1e-3:log", "'0' is not"),
                          ("lora_r=4.5..8", "'4.5' is not an integer"), ("lr=1e-3", "at least two choices"),
                          ("model=a,b", "cannot be searched"), ("metric_for_best=loss,f1", "it is the search's")]:
        with pytest.raises(ConfigError, match=message):
            parse_spec(spec)


@pytest.mark.parametrize("argv, message", [
    (["--space", "lr=abc"], "--space 'lr=abc': 'abc' is not a number > 0 (--lr)"),
    (["--space", "lrr=1e-4..1e-3"], "'lrr' is not a train flag (did you mean 'lr'?)"),
    (["--space", "lr=1e-4..1e-3", "--n_trials", "0"], "argument --n_trials: '0' is not an integer >= 1"),
    (["--space", "lr=1e-4..1e-3", "--storage", "postgresql://postgres:secret@127.0.0.1:{port}/ftlab"],
     "--storage postgresql://postgres:***@127.0.0.1:{port}/ftlab: cannot open: "),
    (["--space", "lr=1e-4..1e-3", "--lr", "1e-3"], "--lr is given as a fixed flag and searched"),
    (["--space", "optimizer=sgd_nesterov,adamw", "--momentum", "0"], "the space includes optimizer=sgd_nesterov"),
])
def test_bad_input_stops_with_one_line_before_any_model_loads(argv, message, tmp_path, capsys):
    port = free_port()
    argv = [arg.format(port=port) for arg in argv]
    study_dir = tmp_path / "study"
    assert main(["search", "--study_dir", str(study_dir), *argv]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message.format(port=port) in err, err
    assert len(err.strip().splitlines()) == 1
    assert "secret" not in err
    assert "[ftlab] model" not in out and not study_dir.exists()


def test_a_continuation_must_be_the_same_study(flags, tmp_path, capsys):
    study_dir = tmp_path / "study"
    assert main(["search", *flags, "--study_dir", str(study_dir), "--n_trials", "1", "--pruner", "none"]) == 0
    record, = _records(study_dir)
    assert record["search"]["state"] == "COMPLETE" and record["search"]["study"] == "study"
    best = yaml.safe_load((study_dir / "best_config.yaml").read_text())
    assert best["optim"]["lr"] == record["search"]["params"]["lr"] and best["run"]["output_dir"] is None
    assert plan_run(["--config", str(study_dir / "best_config.yaml")]).method.lora_r == \
        record["search"]["params"]["lora_r"]
    capsys.readouterr()
    assert main(["search", *flags, "--study_dir", str(study_dir), "--n_trials", "1", "--max_length", "64"]) == 2
    assert "it has --max_length 32; this command has --max_length 64" in capsys.readouterr().err
    # The same command again: nothing to run; the summary and outputs are written again.
    assert main(["search", *flags, "--study_dir", str(study_dir), "--n_trials", "1", "--pruner", "none"]) == 0
    assert "1 trials: 1 complete, 0 pruned, 0 failed" in capsys.readouterr().out
    assert len(_records(study_dir)) == 1


# --- pruning ------------------------------------------------------------------------------------------------------

def test_a_pruned_trial_is_recorded_as_pruned(flags, tmp_path, capsys):
    """Five finished trials with a validation loss of 0 at every step make any real trial worse than their median
    at its first evaluation: the median pruner must stop it there."""
    from ftlab.search.args import parse_search_args
    from ftlab.search.study import open_study
    from ftlab.search.storage import open_storage

    study_dir = tmp_path / "study"
    argv = [*flags, "--study_dir", str(study_dir), "--metric_for_best", "loss", "--pruner", "median"]
    args = parse_search_args([*argv, "--n_trials", "1"])
    study = open_study(args, open_storage(None, study_dir, "study", 60, None))
    distributions = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
                     "lora_r": optuna.distributions.CategoricalDistribution([2, 4])}
    for _ in range(5):
        study.add_trial(optuna.trial.create_trial(params={"lr": 1e-3, "lora_r": 2}, distributions=distributions,
                                                  value=0.0, intermediate_values={step: 0.0 for step in range(1, 7)}))
    assert main(["search", *argv, "--n_trials", "6"]) == 0
    assert "trial 0 pruned at step 2" in capsys.readouterr().out
    record, = _records(study_dir)
    assert record["search"]["state"] == "PRUNED" and record["search"]["pruned_at_step"] == 2
    assert record["stopped_early"] and [e["step"] for e in record["eval_history"]] == [2]  # 6 steps: evals 2, 3, 4
    assert _study(study_dir).trials[0].state.name == "PRUNED"
    assert main(["report", str(study_dir), "--img_dir", str(tmp_path / "img")]) == 0
    assert "pruned by the search at step 2" in capsys.readouterr().out


# --- several workers on one study ---------------------------------------------------------------------------------

def _worker(flags: list[str], cwd: Path, *extra: str):
    return start_main("search", *flags, *extra, cwd=cwd, merge_stderr=True)


def _worker_in_trial_0(argv, tmp_path, study_dir):
    """A search worker process, returned once trial 0 has loaded its model and trains."""
    worker = _worker(argv, tmp_path)
    deadline = time.monotonic() + 240
    while not (study_dir / "trial-0" / "config.yaml").exists():  # written once the model is loaded
        assert worker.poll() is None and time.monotonic() < deadline, worker.communicate()[0][-3000:]
        time.sleep(0.05)
    return worker


def _finish(worker) -> str:
    output = worker.communicate(timeout=300)[0]
    assert worker.returncode == 0, output[-3000:]
    return output


def test_two_workers_share_one_sqlite_study_and_run_exactly_n(flags, tmp_path, capsys):
    # One worker in a process of its own, one in this test's process (whose imports are already paid for).
    study_dir = tmp_path / "study"
    argv = [*flags, "--study_dir", str(study_dir), "--n_trials", "3"]
    other = _worker(argv, tmp_path)
    assert main(["search", *argv]) == 0
    outputs = [_finish(other), capsys.readouterr().out]
    _assert_exactly(3, study_dir)
    assert all("3 trials: 3 complete" in output for output in outputs)


def _start_postgres(directory: Path, port: int) -> Path:
    """Debian's PostgreSQL server with its data in `directory`; returns the bin dir. Skips with the failing step
    (fails with it under FTLAB_REQUIRE_INFRA=1)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found and os.geteuid() == 0:  # as scripts/slurm/local_cluster.sh installs SLURM
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "postgresql"]
        if subprocess.run(install, capture_output=True, env=env, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=600)
            subprocess.run(install, capture_output=True, env=env, timeout=600)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        infrastructure_missing("PostgreSQL: no /usr/lib/postgresql/*/bin/pg_ctl, and `apt-get install -y "
                               "postgresql` did not provide one" + ("" if os.geteuid() == 0 else " (not root)"))
    bin_dir = Path(found[-1]).parent
    # The server refuses to run as root: as root, run it as the `postgres` user, which must own its directory.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(directory, "postgres")
    steps = [[str(bin_dir / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "postgres"],
             [str(bin_dir / "pg_ctl"), "-D", str(directory / "data"), "-l", str(directory / "server.log"), "-w",
              "-o", f"-p {port} -k {directory} -c listen_addresses=127.0.0.1", "start"]]
    for step in steps:
        done = subprocess.run([*as_user, *step], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (directory / "server.log").read_text() if (directory / "server.log").exists() else ""
            infrastructure_missing(f"PostgreSQL could not be started: `{' '.join(step)}` exited {done.returncode}:"
                                   f"\n{(done.stderr + done.stdout + log)[-1500:]}")
    return bin_dir


@pytest.fixture
def postgres_url():
    # Not under pytest's tmp_path: its parents are closed to the `postgres` user.
    directory = Path(tempfile.mkdtemp(prefix="ftlab-postgres-"))
    port = free_port()
    bin_dir = None
    try:
        bin_dir = _start_postgres(directory, port)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if bin_dir:
            subprocess.run([*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
                            str(bin_dir / "pg_ctl"), "-D", str(directory / "data"), "-m", "immediate", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


def test_two_workers_share_one_postgresql_study(postgres_url, flags, tmp_path, capsys):
    study_dir = tmp_path / "study"
    argv = [*flags, "--study_dir", str(study_dir), "--n_trials", "2", "--storage", postgres_url]
    other = _worker(argv, tmp_path)
    assert main(["search", *argv]) == 0
    outputs = [_finish(other), capsys.readouterr().out]
    records = _assert_exactly(2, study_dir, storage=postgres_url)
    assert all(record["search"]["storage"] == postgres_url for record in records)
    assert all("study study (postgresql://" in output for output in outputs)
    assert not list(study_dir.glob("*.db"))  # nothing went to a SQLite file


# --- a worker killed mid-trial ------------------------------------------------------------------------------------

def test_a_killed_workers_trial_is_failed_and_run_again(flags, tmp_path, capsys):
    # 320 training rows (20 steps): the kill lands while trial 0 trains. Heartbeats every second, dead after 3 s.
    data = write_csv(tmp_path / "longer.csv", synthetic_rows(400))
    study_dir = tmp_path / "study"
    argv = [*flags, "--dataset", str(data), "--study_dir", str(study_dir), "--n_trials", "1", "--pruner", "none",
            "--heartbeat_interval", "1", "--grace_period", "3"]
    doomed = _worker_in_trial_0(argv, tmp_path, study_dir)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert not (study_dir / "trial-0" / "result.json").exists()
    assert _study(study_dir).trials[0].state.name == "RUNNING"

    # A second worker sees the running trial go stale (at once, or while it waits for it), and re-runs it.
    assert main(["search", *argv]) == 0
    out = capsys.readouterr().out
    killed, retry = _study(study_dir).get_trials()
    assert killed.state.name == "FAIL"  # not complete: no value, no record
    assert retry.state.name == "COMPLETE" and retry.user_attrs["retry_of"] == 0 and retry.params == killed.params
    record, = _records(study_dir)
    assert record["search"]["trial"] == 1 and record["search"]["retry_of"] == 0
    assert not (study_dir / "trial-0" / "result.json").exists()
    assert "trial 1 (retry of trial 0)" in out
    assert "2 trials: 1 complete, 0 pruned, 1 failed (1 re-run after their worker died" in out


def test_a_stopped_worker_queues_its_trial_again_and_exits_75(flags, tmp_path, capsys):
    # SIGTERM (a scheduler's stop; SLURM's warning reaches the worker as the stop file): the trial in progress
    # stops at its next step, is failed and queued again, and the worker exits with the "interrupted" code.
    from ftlab.exit_codes import INTERRUPTED

    data = write_csv(tmp_path / "longer.csv", synthetic_rows(400))
    study_dir = tmp_path / "study"
    argv = [*flags, "--dataset", str(data), "--study_dir", str(study_dir), "--n_trials", "1", "--pruner", "none"]
    worker = _worker_in_trial_0(argv, tmp_path, study_dir)
    worker.send_signal(signal.SIGTERM)
    output = worker.communicate(timeout=240)[0]
    assert worker.returncode == INTERRUPTED, output[-3000:]
    assert "trial 0 interrupted; queued again" in output
    stopped, queued = _study(study_dir).get_trials()
    assert stopped.state.name == "FAIL" and queued.state.name == "WAITING"
    assert not list((study_dir / "trial-0").glob("checkpoint-*"))  # a trial is never resumed: no disk kept

    assert main(["search", *argv]) == 0  # the same command (the requeued SLURM task) completes the study
    stopped, rerun = _study(study_dir).get_trials()
    assert rerun.state.name == "COMPLETE" and rerun.params == stopped.params
    assert [record["search"]["trial"] for record in _records(study_dir)] == [1]


# --- the SLURM array template -------------------------------------------------------------------------------------

@pytest.mark.distributed
@pytest.mark.xdist_group("slurm")
def test_search_array_runs_two_workers_of_one_study(slurm_env, flags, tmp_path):
    study_dir = tmp_path / "study"
    job_id = sbatch(slurm_env, "--array=0-1", "--chdir", str(tmp_path), "--output", str(tmp_path / "job-%A_%a.out"),
                    str(ROOT / "scripts" / "slurm" / "search_array.sbatch"), *flags, "--study_dir", str(study_dir),
                    "--n_trials", "2", cwd=tmp_path)
    code = wait_for_slurm_job(slurm_env, job_id, timeout=300)
    logs = [path.read_text() for path in sorted(tmp_path.glob("job-*.out"))]
    assert code == 0, "\n".join(log[-2000:] for log in logs)
    assert len(logs) == 2 and all("search worker" in log and "[search] study study" in log for log in logs)
    _assert_exactly(2, study_dir)
