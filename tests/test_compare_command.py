"""`main.py compare`: its bad input stops at once, and on the tiny DistilBERT a two-method comparison tunes each
method on validation (its registry default the first trial), confirms the best and the default on fresh seeds,
writes its verdicts and tuning curves, continues instead of repeating, and reuses finished default runs."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ftlab import methods
from ftlab.cli import main
from ftlab.compare.args import parse_compare_args
from ftlab.compare.tasks import reusable, stage_records
from tests.conftest import run_main, synthetic_rows, write_csv


@pytest.mark.parametrize("argv, message", [
    (["--methods", "lora,lorra"], "--method lorra: unknown method (did you mean 'lora'?)"),
    (["--methods", "lora", "--trials", "1"], "--trials 1: a study needs at least 2 trials"),
    (["--methods", "lora,head", "--tune", "lora_r"], "--tune lora_r: not a hyperparameter of --method head"),
    (["--methods", "lora", "--tune", "unfreeze_layers"], "--tune unfreeze_layers: not a hyperparameter of --method "
                                                        "lora (it tunes lora_alpha, lora_r beside the learning rate)"),
    (["--methods", "lora", "--seeds", "1,2", "--trial_seeds", "2,5"], "--seeds 1,2 and --trial_seeds 2,5 share "
                                                                      "seed 2"),
    (["--methods", "lora", "--lr", "1e-3"], "--lr cannot be used with compare: each method's learning rate is tuned"),
    (["--methods", "head", "--lora_r", "4"], "--lora_r: none of compare's methods (head) has it"),
])
def test_bad_input_stops_before_anything_loads(argv, message, tmp_path):
    start = time.monotonic()
    proc = run_main("compare", *argv, cwd=tmp_path, timeout=60, fresh=True)
    assert proc.returncode == 2 and time.monotonic() - start < 10
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


@pytest.mark.e2e
def test_a_comparison_tunes_confirms_and_continues(tiny_model_dir, tmp_path, capsys):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(200, seed=3))
    out = tmp_path / "compare"
    argv = ["compare", "--methods", "ia3,head", "--trials", "2", "--seeds", "1,2", "--trial_seeds", "7",
            "--output_dir", str(out), "--pruner", "none", "--model", str(tiny_model_dir), "--dataset", str(data),
            "--text_column", "sentence", "--label_column", "polarity", "--max_length", "32", "--precision", "fp32"]
    assert main(argv) == 0
    parsed = parse_compare_args(argv[1:])
    result = json.loads((out / "compare.json").read_text())
    assert list(result["methods"]) == ["ia3", "head"]
    for method, entry in result["methods"].items():
        trials = sorted((json.loads(path.read_text()) for path in (out / "tune" / method).rglob("result.json")),
                        key=lambda t: t["search"]["trial"])
        # The first trial is the registry's default; every trial ran on the trial seed and was scored on validation.
        first = next(t for t in trials if t["search"]["trial"] == 0)
        assert first["config"]["optim"]["lr"] == methods.get(method).default_lr
        assert {t["seed"] for t in trials} == {7}
        assert entry["trial_scores"] == [t["metrics"]["validation"]["accuracy"] for t in trials]
        low, high = methods.get(method).lr_range
        assert all(low <= t["config"]["optim"]["lr"] <= high for t in trials)
        best = max(trials, key=lambda t: t["metrics"]["validation"]["accuracy"])  # the first of equals, as Optuna
        confirms, defaults = (stage_records(parsed, stage, method) for stage in ("confirm", "default"))
        assert len(confirms) == len(defaults) == 2
        for seed, confirmed, default in zip((1, 2), (r.data for r in confirms), (r.data for r in defaults)):
            assert confirmed["config"]["optim"]["lr"] == pytest.approx(best["config"]["optim"]["lr"])
            assert default["config"]["optim"]["lr"] == methods.get(method).default_lr
            assert confirmed["seed"] == default["seed"] == seed
        assert entry["tuned"]["seeds"] == [1, 2] and len(entry["tuning_curve"]["expected"]) == 2
        assert entry["tuned"]["verdict"] and entry["default"]["verdict"]
        # Serving cost beside training cost: ms per 1,000 texts at the runs' test-split evaluation throughput.
        tested = [r.data["metrics"]["test"]["samples_per_second"] for r in confirms]
        assert entry["tuned"]["inference_ms_per_1000"] == pytest.approx(np.mean([1e6 / rate for rate in tested]))
        assert isinstance(entry["verdict_flipped"], bool)
    assert result["tuned_reference"] in ("ia3", "head") and 1 <= result["stable_budget"] <= 2
    assert (out / "compare.md").is_file() and all(Path(p).is_file() for p in result["plots"])
    # The tuning-curve table counts the completed trials the curve is over; k = 5 lies beyond two trials: empty.
    lines = (out / "compare.md").read_text().splitlines()
    curve_row = next(line for line in lines if line.startswith("| ia3 | 2 (0) |"))
    assert curve_row.split(" | ")[4] == "–"
    printed = capsys.readouterr().out
    # Within 100 columns, but for a path longer than a line (pytest's temporary paths), which stays whole.
    assert [line for line in printed.splitlines() if len(line) > 100 and " " in line.strip()] == []

    # Again: nothing is trained twice.
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished before, skipped") == 8 and "trial 2" not in printed
    assert sum(1 for _ in (out / "tune" / "ia3").glob("trial-*")) == 2

    # A later comparison reads the finished default runs of the same configuration and seed instead of re-running.

    again = parse_compare_args([*argv[1:], "--output_dir", str(tmp_path / "again"), "--reuse", str(out)])
    found = reusable(again, again.method_argv("head") + ["--seed", "2"], 2)
    default = stage_records(parsed, "default", "head")[1].data
    assert found is not None and found.parent.parent.name in ("default", "confirm")  # the best may be the default
    assert json.loads((found / "result.json").read_text())["group"] == default["group"]
    assert reusable(again, again.method_argv("head") + ["--seed", "3"], 3) is None
