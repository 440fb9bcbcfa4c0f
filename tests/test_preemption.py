"""Stop requests (ftlab/preemption.py) on the real Trainer: when the checkpoint is written, what it holds, and what
signals do. A request is made at an exact moment by a callback that creates the stop file (what the SLURM
templates do) from inside an evaluation, a save or a step."""
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback

from ftlab.runs.plan import plan_run
from ftlab.cli import main
from ftlab.exit_codes import INTERRUPTED
from ftlab.runs.preemption import STOP_FILE_ENV, TrainingInterrupted, stop_on_signals
from ftlab.training.run import run_training
from tests.conftest import noisy_rows, synthetic_rows, write_csv

STEPS_PER_EPOCH = 20  # 400 rows -> 320 training rows / batch 16


class RequestStop(TrainerCallback):
    """Creates the stop file during one event at one step: a request arriving while that event runs."""

    def __init__(self, event: str, step: int):
        self.event, self.step = event, step

    def _at(self, event: str, state) -> None:
        if event == self.event and state.global_step == self.step:
            Path(os.environ[STOP_FILE_ENV]).touch()

    def on_step_end(self, args, state, control, **kwargs):
        self._at("on_step_end", state)

    def on_evaluate(self, args, state, control, **kwargs):
        self._at("on_evaluate", state)

    def on_save(self, args, state, control, **kwargs):
        self._at("on_save", state)


@pytest.fixture
def stop_file(tmp_path, monkeypatch):
    path = tmp_path / "stop"
    monkeypatch.setenv(STOP_FILE_ENV, str(path))
    return path


def _config(tiny_model_dir, tmp_path, *flags):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    return plan_run(["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                       "--label_column", "polarity", "--max_length", "32", "--lr", "2e-3",
                       "--output_dir", str(tmp_path / "run"), *flags])


def _stop(cfg, event, step) -> TrainingInterrupted:
    with pytest.raises(TrainingInterrupted) as stopped:
        run_training(cfg, callbacks=[RequestStop(event, step)])
    return stopped.value


def _state(checkpoint: str) -> dict:
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())


def test_a_request_during_evaluation_is_honoured_when_it_ends(tiny_model_dir, tmp_path, stop_file):
    cfg = _config(tiny_model_dir, tmp_path, "--eval_steps", "5", "--save_steps", "15")
    stopped = _stop(cfg, "on_evaluate", 10)
    assert stopped.step == 10 and stopped.checkpoint == str(tmp_path / "run" / "checkpoint-10")
    # The checkpoint is the Trainer's own and complete, with the evaluation that was running in its history.
    state = _state(stopped.checkpoint)
    assert state["global_step"] == 10
    assert [entry["step"] for entry in state["log_history"] if "eval_accuracy" in entry] == [5, 10]
    assert {"adapter_model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"} <= {
        path.name for path in Path(stopped.checkpoint).iterdir()}
    assert not (tmp_path / "run" / "result.json").exists() and not (tmp_path / "index.jsonl").exists()


def test_a_request_during_a_save_stops_after_that_checkpoint(tiny_model_dir, tmp_path, stop_file):
    cfg = _config(tiny_model_dir, tmp_path, "--save_steps", "5", "--logging_steps", "5")
    stopped = _stop(cfg, "on_save", 10)
    assert stopped.step == 10
    assert [path.name for path in (tmp_path / "run").glob("checkpoint-*")] == ["checkpoint-10"]


def test_a_request_at_an_epochs_last_step_waits_for_its_evaluation(tiny_model_dir, tmp_path, stop_file):
    # The resumed run would start the next epoch and never evaluate this one: its evaluation comes first.
    cfg = _config(tiny_model_dir, tmp_path, "--epochs", "2", "--logging_steps", "7")
    stopped = _stop(cfg, "on_step_end", STEPS_PER_EPOCH)
    state = _state(stopped.checkpoint)
    assert stopped.step == state["global_step"] == STEPS_PER_EPOCH
    assert [entry["epoch"] for entry in state["log_history"] if "eval_accuracy" in entry] == [1.0]
    # The loss of the steps since the last logging step (14) is logged at the stop, so none is lost on resuming.
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [7, 14, 20]


def test_a_resumed_run_counts_the_training_seconds_of_its_earlier_attempts(tiny_model_dir, tmp_path, stop_file):
    # A curve's cost frontier reads train_seconds: a point resumed after preemption must not look cheaper.
    cfg = _config(tiny_model_dir, tmp_path, "--save_steps", "5")
    stopped = _stop(cfg, "on_step_end", 10)
    clock = _state(stopped.checkpoint)["stateful_callbacks"]["TrainingClock"]["attributes"]
    assert clock["seconds_before"] > 0  # the first attempt's seconds up to its checkpoint
    # Stand in a long first attempt (an hour), so the sum below cannot be this attempt's time alone.
    state = _state(stopped.checkpoint)
    state["stateful_callbacks"]["TrainingClock"]["attributes"]["seconds_before"] = 3600.0
    (Path(stopped.checkpoint) / "trainer_state.json").write_text(json.dumps(state))
    stop_file.unlink()
    start = time.perf_counter()
    record = run_training(_config(tiny_model_dir, tmp_path, "--save_steps", "5", "--resume", "auto"))
    elapsed = time.perf_counter() - start
    assert record["resumed_from"] == stopped.checkpoint
    assert 3600.0 < record["train_seconds"] < 3600.0 + elapsed


def test_a_resumed_run_keeps_early_stoppings_count(tiny_model_dir, tmp_path, stop_file):
    # Stopped one evaluation after the best, the resumed run must carry on with early stopping's count of 1:
    # counting from 0 again, it would train one epoch past where the uninterrupted run stopped.
    data = write_csv(tmp_path / "noisy.csv", noisy_rows(400))

    def cfg(name: str, *flags: str):
        return plan_run(["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                         "--label_column", "polarity", "--max_length", "32", "--method", "full", "--lr", "5e-3",
                         "--epochs", "10", "--load_best", "--metric_for_best", "loss", "--early_stopping_patience",
                         "2", "--precision", "fp32", "--output_dir", str(tmp_path / name), *flags])

    whole = run_training(cfg("whole"))
    losses = [entry["loss"] for entry in whole["eval_history"]]
    best = int(np.argmin(losses))
    assert whole["stopped_early"] and len(losses) == best + 3
    with pytest.raises(TrainingInterrupted):
        run_training(cfg("run"), callbacks=[RequestStop("on_step_end", STEPS_PER_EPOCH * (best + 2))])
    stop_file.unlink()
    resumed = run_training(cfg("run", "--resume", "auto"))
    assert resumed["resumed_from"] and resumed["stopped_early"]
    assert [entry["epoch"] for entry in resumed["eval_history"]] == [entry["epoch"] for entry in
                                                                     whole["eval_history"]]
    assert resumed["metrics"]["test"]["accuracy"] == whole["metrics"]["test"]["accuracy"]


def test_signals_stop_training_and_a_second_ctrl_c_aborts(tiny_model_dir, tmp_path):
    class Signal(TrainerCallback):
        def __init__(self, *signals):
            self.signals = signals

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                for signum in self.signals:
                    os.kill(os.getpid(), signum)  # handled between two bytecodes, before the next line

    cfg = _config(tiny_model_dir, tmp_path, "--logging_steps", "50")
    # SIGUSR1, then SLURM's SIGTERM at the time limit: the second is ignored, the stop goes on.
    with stop_on_signals(), pytest.raises(TrainingInterrupted) as stopped:
        run_training(cfg, callbacks=[Signal(signal.SIGUSR1, signal.SIGTERM)])
    assert (stopped.value.reason, stopped.value.step) == ("SIGUSR1", 3)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # the handlers are gone after the command

    with stop_on_signals(), pytest.raises(KeyboardInterrupt):
        run_training(cfg, callbacks=[Signal(signal.SIGINT, signal.SIGINT)])


def test_a_signal_before_training_stops_at_once_with_nothing_to_save(tmp_path):
    with stop_on_signals(), pytest.raises(TrainingInterrupted) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
    assert (stopped.value.reason, stopped.value.checkpoint) == ("SIGTERM", None)
    assert "before training started: nothing to save" in str(stopped.value)


def stop_the_second_seed_then_resume(flags: list[str], output_dir: Path, stop_file: Path, capsys) -> tuple[dict, dict]:
    """`--seeds 1` finishes; `--seeds 1,2 --resume auto` under a stop request stops seed 2 at its first step (exit
    75); the same command again skips seed 1 and resumes seed 2 from its checkpoint. The two seeds' records."""
    assert main([*flags, "--seeds", "1"]) == 0
    stop_file.touch()
    assert main([*flags, "--seeds", "1,2", "--resume", "auto"]) == INTERRUPTED
    stop_file.unlink()
    assert main([*flags, "--seeds", "1,2", "--resume", "auto"]) == 0
    said = " ".join(capsys.readouterr().out.split())  # console lines wrap at 100 columns where a path is long
    assert f"[ftlab] {output_dir / 'seed1'}: finished before (result.json), skipped" in said
    first, second = (json.loads((output_dir / f"seed{seed}" / "result.json").read_text()) for seed in (1, 2))
    assert (first["attempts"], first["resumed_from"]) == (1, None)
    assert (second["attempts"], Path(second["resumed_from"]).name) == (2, "checkpoint-1")
    return first, second


def test_an_interrupted_seeds_command_skips_finished_seeds_and_resumes_the_stopped_one(tiny_model_dir, tmp_path,
                                                                                        stop_file, capsys):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(200))
    flags = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence", "--label_column",
             "polarity", "--max_length", "32", "--output_dir", str(tmp_path / "lora")]
    stop_the_second_seed_then_resume(flags, tmp_path / "lora", stop_file, capsys)
