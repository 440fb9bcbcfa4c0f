"""`train --seeds`: one normal run per seed, records that carry seed and group, per-example prediction files,
and the W&B group the seeds share."""
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from ftlab import cli
from ftlab.runs.plan import plan_run
from tests.conftest import synthetic_rows, write_csv
from tests.test_report import table_rows


def test_seeds_run_once_each_with_predictions_and_one_group(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # W&B keeps its settings away from the real home
    rows = synthetic_rows(400)
    data = write_csv(tmp_path / "reviews.csv", rows)
    out = tmp_path / "study" / "lora"
    assert cli.main(["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                     "--label_column", "polarity", "--lr", "1e-2", "--max_length", "32", "--seeds", "3,1",
                     "--max_train_samples", "64", "--max_eval_samples", "16", "--max_test_samples", "24",
                     "--logging_steps", "1",
                     "--output_dir", str(out), "--wandb_project", "p", "--wandb_mode", "offline"]) == 0
    capsys.readouterr()
    records = {seed: json.loads((out / f"seed{seed}" / "result.json").read_text()) for seed in (3, 1)}
    # One line per seed in the index beside the seed directories, in the order run.
    assert [json.loads(line)["seed"] for line in (out / "index.jsonl").read_text().splitlines()] == [3, 1]
    assert records[1]["group"] == records[3]["group"] and len(records[1]["group"]) == 12
    # Only the seed differs: same data, and each saved config repeats its own run.
    assert records[1]["data"] == records[3]["data"]
    assert records[1]["loss_history"] != records[3]["loss_history"]
    saved = yaml.safe_load((out / "seed1" / "config.yaml").read_text())
    assert (saved["run"]["seed"], saved["run"]["seeds"], saved["run"]["output_dir"]) == (1, None, str(out / "seed1"))
    # The seeds share one W&B group: the method and the configuration group.
    assert {r["tracking"]["group"] for r in records.values()} == {f"lora-{records[1]['group']}"}

    record = records[1]
    assert record["predictions"] == {"validation": "predictions/validation.parquet",
                                     "test": "predictions/test.parquet"}
    for split in ("validation", "test"):
        frame = pd.read_parquet(out / "seed1" / record["predictions"][split])
        assert list(frame.columns) == ["example_id", "label", "prediction", "p_neg", "p_pos"]
        assert len(frame) == record["metrics"][split]["num_samples"] == {"validation": 16, "test": 24}[split]
        # An id names the example's row in the source file, whose label it carries.
        source_rows = [int(example_id.split("/")[1]) for example_id in frame["example_id"]]
        assert all(example_id.startswith("train/") for example_id in frame["example_id"])
        assert frame["label"].tolist() == [["neg", "pos"].index(rows[row][1]) for row in source_rows]
        probabilities = frame[["p_neg", "p_pos"]].to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
        assert (probabilities.argmax(axis=1) == frame["prediction"]).all()
        assert (frame["prediction"] == frame["label"]).mean() == record["metrics"][split]["accuracy"]
    # The same examples for every seed: what the paired tests need.
    pd.testing.assert_series_equal(pd.read_parquet(out / "seed1" / "predictions/test.parquet")["example_id"],
                                   pd.read_parquet(out / "seed3" / "predictions/test.parquet")["example_id"])

    assert cli.main(["report", str(tmp_path / "study"), "--img_dir", str(tmp_path / "img")]) == 0
    [row] = table_rows((tmp_path / "study" / "report.md").read_text())
    from ftlab.analysis.report import GROUP_COLUMNS

    assert (row[0], row[4], row[GROUP_COLUMNS.index("verdict")]) == ("lora", "2", "reference")


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "1,x"], "error: argument --seeds: 'x' is not an integer (--seeds takes comma-separated integers, "
                         "e.g. 1,2,3)"),
    (["--seeds", "1,2,1"], "error: argument --seeds: seed 1 is given twice (each seed is one run)"),
    (["--seed", "3", "--seeds", "1,2"], "error: --seed and --seeds both given (flags): use --seeds alone to run "
                                        "several seeds"),
    (["baseline", "--seeds", "1,2"], "error: --seeds 1,2: the baseline is deterministic (no training seed); it runs "
                                     "once, without --seeds"),
])
def test_bad_seeds_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not (tmp_path / "runs").exists()


def test_a_finished_seed_stops_the_command_before_anything_runs(tmp_path):
    (tmp_path / "out" / "seed2").mkdir(parents=True)
    (tmp_path / "out" / "seed2" / "result.json").write_text("{}")
    with pytest.raises(Exception, match=r"--output_dir .*out/seed2 already holds a finished run"):
        plan_run(["--seeds", "1,2", "--output_dir", str(tmp_path / "out")])
