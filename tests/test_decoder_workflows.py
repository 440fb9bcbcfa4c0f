"""The workflows around a run, on a decoder LM (a tiny random Llama with a BOS-only tokenizer and no pad token):
seeds, saving an adapter, a stopped run resumed, the LoRA -> head chain, predict, search and bench. The encoder
tests cover the same commands on the tiny DistilBERT; this file shows that nothing in them assumes an encoder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification

from ftlab.cli import main
from ftlab.runs.plan import plan_run
from ftlab.runs.preemption import STOP_FILE_ENV
from ftlab.training.run import run_training
from tests.conftest import run_main, synthetic_rows, write_csv
from tests.test_export import MERGE_ATOL, EncoderOutputs
from tests.test_families import SIZE, _tiny_family_dir
from tests.test_preemption import stop_the_second_seed_then_resume

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> tuple[Path, list[str]]:
    """The tiny Llama's directory and the train flags of a run on it that takes seconds."""
    root = tmp_path_factory.mktemp("llama")
    model_dir = _tiny_family_dir(root / "model", "llama", "llama")
    data = write_csv(root / "reviews.csv", synthetic_rows(200, seed=5))
    flags = ["--model", str(model_dir), "--dataset", str(data), "--text_column", "sentence", "--label_column",
             "polarity", "--max_length", "16", "--batch_size", "16", "--lr", "1e-2", "--precision", "fp32",
             "--logging_steps", "1"]
    return model_dir, flags


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def test_seeds_adapters_a_resumed_seed_and_the_chain_into_a_head_on_a_decoder(llama, tmp_path, monkeypatch, capsys):
    model_dir, flags = llama
    stop_file = tmp_path / "stop"
    monkeypatch.setenv(STOP_FILE_ENV, str(stop_file))
    adapters, runs = tmp_path / "adapters", tmp_path / "lora"
    lora = [*flags, "--method", "lora", "--save_adapter", str(adapters), "--output_dir", str(runs)]
    # Seed 2 is stopped at its first step (a preemption), then the same command finishes it from its checkpoint.
    first, second = stop_the_second_seed_then_resume(lora, runs, stop_file, capsys)
    assert first["group"] == second["group"] and first["seed"] != second["seed"]
    assert first["loss_history"] != second["loss_history"]  # the seed changes the head's start and the batches
    assert (first["pooling"]["used"], first["pad_token_from_eos"]) == ("last", True)
    for seed in (1, 2):
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (adapters / f"seed{seed}")
                                                                        .iterdir()}

    # The chain: a head trained on the encoder that seed 2's adapter, merged, computes; its frozen blocks give the
    # merged model's hidden state of the last token before the first step and after the last (ftlab's last-token
    # pooling puts that state in every position, for the head to read).
    from peft import PeftModel

    base = AutoModelForSequenceClassification.from_pretrained(model_dir)
    merged = PeftModel.from_pretrained(base, adapters / "seed2").merge_and_unload().eval()
    batch = {"input_ids": torch.tensor([[1, 5, 9, 12, 7]]), "attention_mask": torch.ones(1, 5, dtype=torch.long)}
    with torch.no_grad():
        expected = merged.base_model(**batch).last_hidden_state[:, -1:].expand(-1, 5, -1)
        untouched = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        assert (untouched.base_model(**batch).last_hidden_state[:, -1] - expected[:, -1]).abs().max() > 1e-3
    seen = EncoderOutputs(batch)
    chained = run_training(plan_run([*flags, "--method", "head", "--load_adapter", str(adapters / "seed2"),
                                     "--output_dir", str(tmp_path / "head")]), callbacks=[seen])
    assert len(seen.seen) == 2
    for hidden in seen.seen:
        torch.testing.assert_close(hidden, expected, rtol=0, atol=MERGE_ATOL)
    assert chained["trainable_params"] == SIZE["hidden_size"] * 2  # Llama's score layer has no bias
    assert chained["pooling"]["used"] == "last"

    # predict loads the base model and the adapter as the run saved them, and gives the merged model's
    # probabilities (one text per batch: no padding, so transformers' own last-token pooling applies too).
    from transformers import AutoTokenizer

    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    model, tokenizer = load_for_inference(str(adapters / "seed2"))
    own_tokenizer = AutoTokenizer.from_pretrained(adapters / "seed2")
    for text in ("great wonderful film", "awful boring plot"):
        [predicted] = predict(model, tokenizer, [text])
        with torch.no_grad():
            probabilities = merged(**own_tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
        assert predicted["probabilities"]["pos"] == pytest.approx(
            probabilities[model.config.label2id["pos"]].item(), abs=1e-5)


def test_a_search_on_a_decoder_runs_its_trials_and_writes_a_loadable_best_config(llama, tmp_path, capsys):
    _, flags = llama
    study_dir = tmp_path / "study"
    assert main(["search", *flags, "--method", "lora", "--n_trials", "2", "--space", "warmup_ratio=0..0.2",
                 "--space", "lora_r=2,4", "--study_dir", str(study_dir), "--img_dir", str(tmp_path / "img")]) == 0
    assert "2 trials: 2 complete" in capsys.readouterr().out
    records = [json.loads(line) for line in (study_dir / "index.jsonl").read_text().splitlines()]
    assert sorted(r["search"]["trial"] for r in records) == [0, 1]
    assert all(r["model_type"] == "llama" and r["pooling"]["used"] == "last" for r in records)
    best = max(records, key=lambda r: r["search"]["objective"])
    best_config = yaml.safe_load((study_dir / "best_config.yaml").read_text())
    assert best_config["optim"]["warmup_ratio"] == best["search"]["params"]["warmup_ratio"]
    assert plan_run(["--config", str(study_dir / "best_config.yaml")]).method.lora_r == \
        best["search"]["params"]["lora_r"]


def test_bench_runs_both_recipes_on_a_decoder(llama, tmp_path):
    _, flags = llama
    bench_dir = tmp_path / "bench"
    proc = run_main("bench", "--methods", "lora", *flags, "--bench_dir", str(bench_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = {row["recipe"]: row for row in json.loads((bench_dir / "bench.json").read_text())["rows"]}
    assert set(rows) == {"reference", "default"}
    for recipe, row in rows.items():
        record = _record(bench_dir / f"lora-{recipe}")
        assert record["model_type"] == "llama" and record["pooling"]["used"] == "last"
        assert row["samples_per_second"] > 0 and row["useful_flops_per_second"] > 0
        assert row["test_accuracy"] == record["metrics"]["test"]["accuracy"]
