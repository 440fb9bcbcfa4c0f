"""The workflows around a run with the methods beyond LoRA (IA³ and prompt tuning stand for PEFT's tuners and its
prompt methods; AdaLoRA, LoRA+ and LoRA's data-driven and residual initialisations have their own hooks): seeds with
saved adapters, a stopped seed resumed, an adapter continued, the merge, predict against the run's own test
predictions, and a pre-flight refusal before anything loads. On the tiny DistilBERT of conftest."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from ftlab import methods
from ftlab.runs.plan import plan_run
from ftlab.runs.preemption import STOP_FILE_ENV
from ftlab.training.run import run_training
from tests.conftest import run_main, synthetic_rows, write_csv
from tests.test_preemption import stop_the_second_seed_then_resume

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flags(tiny_model_dir, tmp_path_factory) -> list[str]:
    data = write_csv(tmp_path_factory.mktemp("data") / "reviews.csv", synthetic_rows(240, seed=7))
    return ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence", "--label_column",
            "polarity", "--max_length", "32", "--precision", "fp32", "--logging_steps", "1", "--epochs", "2"]


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def _predicted_test_probabilities(model_dir: Path, record: dict) -> list[float]:
    """predict's probability of the run's second label for the run's own test texts, in the run's order."""
    from ftlab.config import config_from_record
    from ftlab.data.load import load_data
    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    texts = load_data(config_from_record(record["config"])).splits["test"]["text"]
    model, tokenizer = load_for_inference(str(model_dir))
    label = record["data"]["label_names"][1]
    return [row["probabilities"][label] for row in predict(model, tokenizer, texts)]


def _run_test_probabilities(record: dict) -> list[float]:
    frame = pd.read_parquet(Path(record["output_dir"]) / record["predictions"]["test"])
    return frame[f"p_{record['data']['label_names'][1]}"].tolist()


# Prompt tuning learns the cue words slowly on a 2-layer model (the head reads the first virtual token, as in PEFT):
# its loss falls, its accuracy is not asserted.
@pytest.mark.parametrize("method, lr, accuracy", [("ia3", "3e-2", 0.7), ("prompt_tuning", "3e-2", None)])
def test_seeds_adapters_resume_continue_and_predict(method, lr, accuracy, flags, tmp_path, monkeypatch, capsys):
    stop_file = tmp_path / "stop"
    monkeypatch.setenv(STOP_FILE_ENV, str(stop_file))
    adapters, runs = tmp_path / "adapters", tmp_path / "runs"
    argv = [*flags, "--method", method, "--lr", lr, "--save_adapter", str(adapters), "--output_dir", str(runs)]
    first, second = stop_the_second_seed_then_resume(argv, runs, stop_file, capsys)
    assert first["group"] == second["group"] and first["method"] == method
    losses = [entry["loss"] for entry in first["loss_history"]]
    assert sum(losses[-5:]) < sum(losses[:5]), losses
    if accuracy is not None:
        assert first["metrics"]["test"]["accuracy"] > accuracy  # learned the cue words
    config = json.loads((adapters / "seed1" / "adapter_config.json").read_text())
    assert config["peft_type"] == methods.get(method).peft_type
    # predict from the saved adapter gives the run's own test probabilities.
    assert _predicted_test_probabilities(adapters / "seed1", first) == pytest.approx(
        _run_test_probabilities(first), abs=1e-5)
    # --load_adapter with the same method continues the adapter: it starts where seed 1 ended.
    continued = run_training(plan_run([*flags, "--method", method, "--lr", lr, "--load_adapter",
                                       str(adapters / "seed1"), "--output_dir", str(tmp_path / "again"),
                                       "--epochs", "1"]))
    assert continued["trainable_params"] == first["trainable_params"]
    assert continued["loss_history"][0]["loss"] < first["loss_history"][0]["loss"]


def test_a_merged_tuner_predicts_as_the_run_did(flags, tmp_path):
    record = run_training(plan_run([*flags, "--method", "vera", "--lr", "1e-2", "--merge",
                                    "--output_dir", str(tmp_path / "vera")]))
    merged = Path(record["saved"]["merged"])
    assert not (merged / "adapter_config.json").exists()
    assert _predicted_test_probabilities(merged, record) == pytest.approx(_run_test_probabilities(record), abs=1e-5)


def test_adalora_reallocates_its_ranks_during_training(flags, tmp_path):
    record = run_training(plan_run([*flags, "--method", "adalora", "--lr", "1e-2", "--save_adapter",
                                    str(tmp_path / "adapter"), "--output_dir", str(tmp_path / "adalora"),
                                    "--batch_size", "8"]))
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    # The schedule is the run's own: total steps from the data, and by its end the ranks were reallocated (PEFT
    # writes the pattern of kept ranks then).
    steps = record["loss_history"][-1]["step"]
    assert config["total_step"] == steps and config["rank_pattern"]


def test_loraplus_gives_b_matrices_a_faster_learning_rate():
    from transformers import BertConfig, BertForSequenceClassification

    from ftlab.config import MethodArgs
    from ftlab.models.tuning import apply_method

    model = apply_method(BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)),
        MethodArgs(method="lora", loraplus_lr_ratio=16))
    optimizer = methods.get("lora").optimizer(model, MethodArgs(method="lora", loraplus_lr_ratio=16),
                                              torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.01})
    names = {id(p): n for n, p in model.named_parameters()}
    rates = {names[id(p)]: group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert {n for n, lr in rates.items() if lr == pytest.approx(16e-3)} >= {n for n in rates if "lora_B" in n}
    assert all(lr == pytest.approx(1e-3) for n, lr in rates.items() if "lora_A" in n)
    assert methods.get("lora").optimizer(model, MethodArgs(method="lora"), torch.optim.AdamW, {"lr": 1e-3}) is None


def test_loraplus_and_the_data_driven_and_residual_inits_train_through_main(flags, tmp_path):
    runs = {}
    for name, extra in {"loraplus": ["--loraplus_lr_ratio", "16"], "eva": ["--lora_init", "eva"],
                        "corda": ["--lora_init", "corda"], "pissa": ["--lora_init", "pissa_niter_4"]}.items():
        runs[name] = run_training(plan_run([*flags, "--method", "lora", "--lr", "3e-3", *extra, "--epochs", "1",
                                            "--save_adapter", str(tmp_path / name / "adapter"), "--merge",
                                            "--output_dir", str(tmp_path / name)]))
        assert runs[name]["config"]["method"]["lora_init"] == (extra[1] if "--lora_init" in extra else "kaiming")
    # PiSSA rewrote the base weights: its saved adapter is converted into one for the untouched base (twice the
    # rank), which predicts what the run predicted, as the merged model does.
    pissa = runs["pissa"]
    converted = json.loads((tmp_path / "pissa" / "adapter" / "adapter_config.json").read_text())
    assert converted["r"] == 2 * pissa["config"]["method"]["lora_r"] and converted["init_lora_weights"] is True
    expected = _run_test_probabilities(pissa)
    assert _predicted_test_probabilities(tmp_path / "pissa" / "adapter", pissa) == pytest.approx(expected, abs=1e-4)
    assert _predicted_test_probabilities(Path(pissa["saved"]["merged"]), pissa) == pytest.approx(expected, abs=1e-5)


def test_a_method_the_family_cannot_take_stops_before_the_data_loads(flags, tmp_path):
    cache = tmp_path / "cache"
    proc = run_main(*flags, "--method", "prefix_tuning", "--output_dir", str(tmp_path / "run"), cwd=tmp_path,
                    env={"FTLAB_CACHE": str(cache)}, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == ("error: --method prefix_tuning: PEFT hands the trained prefix to the model as a key-value "
                         "cache, which distilbert (an encoder) does not take; use prompt_tuning or p_tuning on encoders")
    assert not (cache / "tokenized").exists()  # refused before the data were tokenised


def test_curve_search_bench_and_tracking_take_any_method(flags, tmp_path, capsys):
    from ftlab.cli import main

    # curve: one set of flags for two methods; each point gets the flags its method reads.
    curve_dir = tmp_path / "curve"
    assert main(["curve", *flags, "--epochs", "1", "--sizes", "60,120", "--methods", "ia3,prompt_tuning",
                 "--seeds", "1", "--num_virtual_tokens", "4", "--curve_dir", str(curve_dir), "--img_dir",
                 str(tmp_path / "img"), "--bootstrap", "0"]) == 0
    points = {(r["method"], r["config"]["data"]["max_train_samples"]): r for r in
              (json.loads(p.read_text()) for p in curve_dir.rglob("result.json"))}
    assert sorted(points) == [(m, n) for m in ("ia3", "prompt_tuning") for n in (60, 120)]
    assert {points["ia3", 60]["config"]["method"]["num_virtual_tokens"],
            points["prompt_tuning", 60]["config"]["method"]["num_virtual_tokens"]} == {20, 4}
    # search over a tuner's learning rate, its trials tracked offline in W&B.
    study_dir = tmp_path / "study"
    assert main(["search", *flags, "--epochs", "1", "--method", "ia3", "--n_trials", "2", "--space",
                 "lr=1e-3..1e-1:log", "--study_dir", str(study_dir), "--img_dir", str(tmp_path / "img"),
                 "--wandb_project", "ftlab-test", "--wandb_mode", "offline"]) == 0
    trials = [json.loads(line) for line in (study_dir / "index.jsonl").read_text().splitlines()]
    assert {t["method"] for t in trials} == {"ia3"} and len(trials) == 2
    assert all(t["tracking"]["mode"] == "offline" and list(Path(t["output_dir"]).rglob("run-*.wandb"))
               for t in trials)
    # bench times any method's two recipes.
    bench_dir = tmp_path / "bench"
    proc = run_main("bench", "--methods", "ia3", *flags, "--epochs", "1", "--bench_dir", str(bench_dir),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads((bench_dir / "bench.json").read_text())["rows"]
    assert {(row["method"], row["recipe"]) for row in rows} == {("ia3", "reference"), ("ia3", "default")}
    assert all(row["samples_per_second"] > 0 for row in rows)


@pytest.mark.distributed
def test_two_processes_train_a_prompt_method(flags, tmp_path):
    from tests.test_distributed import accelerate_launch

    proc = accelerate_launch(2, *flags, "--method", "prompt_tuning", "--num_virtual_tokens", "4", "--epochs", "1",
                             "--output_dir", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = _record(tmp_path / "run")
    assert record["distributed"]["world_size"] == 2 and record["method"] == "prompt_tuning"
    assert record["metrics"]["test"]["num_samples"] == len(pd.read_parquet(tmp_path / "run" / "predictions" /
                                                                           "test.parquet"))
