"""Files written before the package moved into subpackages (commit fd8220b) still load: records in `report`, a run's
config.yaml with --config, an adapter with --load_adapter and predict, a checkpoint with --resume auto, a merged
model with predict.

tests/fixtures/legacy_fd8220b was written by that commit's code on the tiny DistilBERT of conftest (seed 0), with
paths relative to the fixture directory (model/, reviews.csv): a LoRA run (seed 1, 2 epochs, adapter saved to
adapter/, merged, its last checkpoint kept), a head run chained on that adapter, and the SVM baseline.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftlab.config import config_from_record, group_id
from tests.conftest import ROOT, run_main

FIXTURE = ROOT / "tests" / "fixtures" / "legacy_fd8220b"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy of the fixture (runs write into it); the saved adapters name their base model by the absolute path it
    had when they were written, so they are pointed at the copy's model, as a user who moves the files does."""
    directory = tmp_path / "legacy"
    shutil.copytree(FIXTURE, directory)
    for config in directory.rglob("adapter_config.json"):
        values = json.loads(config.read_text())
        values["base_model_name_or_path"] = str(directory / "model")
        config.write_text(json.dumps(values))
    return directory


def _record(directory: Path) -> dict:
    return json.loads((directory / "result.json").read_text())


def _same_test_metrics(new: dict, old: dict) -> None:
    assert new["metrics"]["test"]["confusion_matrix"] == old["metrics"]["test"]["confusion_matrix"]
    assert new["metrics"]["test"]["loss"] == pytest.approx(old["metrics"]["test"]["loss"], rel=0.05)


def test_report_reads_the_old_records(legacy, tmp_path):
    from ftlab.analysis.records import group_records, load_records

    records = load_records(legacy / "runs")
    assert sorted(record.method for record in records) == ["head", "lora", "tfidf_svm"]
    # Today's code puts each old record in the group the old code named: identity survived the move.
    assert {group.id for group in group_records(records)} == {"a4ec8848771c", "5aa4c253e195", "4b0160d27d41"}
    proc = run_main("report", str(legacy / "runs"), "--img_dir", str(tmp_path / "img"), cwd=legacy, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (legacy / "runs" / "report.md").read_text()
    for name in ("lora", "head", "svm"):
        assert f"| {name} " in report and f"{name} " in proc.stdout, proc.stdout


def test_an_old_config_yaml_repeats_its_run(legacy):
    proc = run_main("--config", "runs/lora/config.yaml", "--output_dir", "again", cwd=legacy, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again, old = _record(legacy / "again"), _record(legacy / "runs" / "lora")
    # A group includes the precision --precision auto resolved to: the fixture's run got bf16 (its CPU had bf16
    # units), a CPU without them gets fp32 and so another group. Today's code gives the old configuration the old
    # group at the old precision, and the repeat the group of that same configuration at its own precision: the
    # same group wherever the precisions match.
    config = config_from_record(again["config"])
    assert group_id(config, "lora", old["precision"]) == old["group"]
    assert group_id(config, "lora", again["precision"]) == again["group"]
    _same_test_metrics(again, old)


def test_an_old_adapter_chains_into_head_training_and_predicts(legacy):
    proc = run_main("--config", "runs/head/config.yaml", "--output_dir", "head_again", cwd=legacy, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_test_metrics(_record(legacy / "head_again"), _record(legacy / "runs" / "head"))

    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    texts = ["the film was wonderful", "the plot was dreadful", "a superb actor", "boring and awful"]
    labels = {}
    for name in ("adapter", "runs/lora/merged"):
        model, tokenizer = load_for_inference(str(legacy / name))
        labels[name] = [row["label"] for row in predict(model, tokenizer, texts, max_length=32)]
    assert labels["adapter"] == labels["runs/lora/merged"] == ["pos", "neg", "pos", "neg"]


def test_an_old_checkpoint_resumes(legacy):
    run = legacy / "runs" / "lora"
    old = _record(run)
    (run / "result.json").unlink()  # as if the run had been stopped after its last checkpoint
    proc = run_main("--config", str(run / "config.yaml"), "--output_dir", str(run), "--resume", "auto",
                    cwd=legacy, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = _record(run)
    assert Path(resumed["resumed_from"]).name == "checkpoint-24"
    assert resumed["attempts"] == 2
    _same_test_metrics(resumed, old)
