"""`export --format onnx`: tiny encoders and decoders, three methods, exported and checked against the torch model;
a bug put in by hand (the pooling left out of the graph) fails the parity check; predict --backend onnx; the
inference benchmark; model cards; bad input in one line before anything heavy loads."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch

from ftlab import cli
from ftlab.config import MethodArgs, command_line, parse_config
from ftlab.data.truncation import truncation_settings
from ftlab.models.export import export_models
from ftlab.models.load import match_pad_token
from ftlab.models.pooling import apply_pooling
from ftlab.models.tuning import apply_method
from tests.conftest import ROOT, nonzero_lora_b, synthetic_rows, word_level_tokenizer, write_csv

SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=128, num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
FAMILIES = {"bert": ("bert", "mean", {}), "llama": ("llama", "last", dict(num_key_value_heads=1))}


def _saved_model(family: str, method: str, directory: Path, pooling: Optional[str] = None) -> Path:
    """A tiny random classifier of `family` with `method` applied and its trained parts set to random values (as
    if trained; the head's bias zero, so that the texts' states decide their labels), saved as a run saves its
    model (ftlab.models.export.export_models): <directory>/model. `pooling`: other than the family's own."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model_type, own_pooling, extra = FAMILIES[family]
    tokenizer = word_level_tokenizer("bert" if family == "bert" else "llama")
    if tokenizer.pad_token is None:  # as ftlab.models.load.load_tokenizer does for a decoder
        tokenizer.pad_token = tokenizer.eos_token
    vocab = tokenizer.get_vocab()
    config = AutoConfig.for_model(model_type, vocab_size=len(vocab), pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=vocab.get("<s>"), eos_token_id=vocab.get("</s>"), **SIZE, **extra)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    match_pad_token(model, tokenizer)
    apply_pooling(model, pooling or own_pooling)
    model.config.update(truncation_settings("head_tail", 16))
    base = directory / "base"  # PEFT's adapter names its base model: a directory, as offline runs have
    model.save_pretrained(base)
    args = MethodArgs(method=method, lora_r=4)
    model = apply_method(model, args)
    nonzero_lora_b(model)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:  # what trains: adapter vectors off their identity, a head with opinions
                head = "classifier" in name or "score" in name
                parameter.add_(torch.randn_like(parameter) * (2.0 if head else 0.1))
                if head and name.endswith("bias"):
                    parameter.zero_()
    if hasattr(model, "peft_config"):
        model.peft_config["default"].base_model_name_or_path = str(base)
    export_models(model, tokenizer, args, directory)
    return directory / "model"


@pytest.fixture(scope="module")
def check_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [(text + " and the film was good and the story was lovely" * (i % 3), label)
            for i, (text, label) in enumerate(synthetic_rows(48))]
    return write_csv(tmp_path_factory.mktemp("check") / "check.csv", rows, header=("text", "label"))


def _export(*args: str) -> int:
    return cli.main(["export", *args])


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("method", ["lora", "ia3", "full"])
def test_export_keeps_the_models_logits(family, method, tmp_path, check_file):
    model_dir = _saved_model(family, method, tmp_path)
    out = tmp_path / "onnx"
    assert _export(str(model_dir), "--check_file", str(check_file), "--output_dir", str(out)) == 0
    record = json.loads((out / "export.json").read_text())
    parity = record["graphs"]["fp32"]["parity"]
    assert record["merged"] is (method != "full") and record["graph"] == "model.onnx"
    assert parity["texts"] == 48 and parity["drift"] == []
    assert parity["label_agreement"] == 1.0
    assert parity["exported_accuracy"] == parity["reference_accuracy"]
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["ftlab_pooling"] == FAMILIES[family][1]
    assert config["ftlab_truncation"] == "head_tail" and config["ftlab_max_length"] == 16
    assert (out / "tokenizer.json").is_file() and "ONNX export" in (out / "README.md").read_text()


def test_predict_with_the_onnx_backend_labels_as_torch_does(tmp_path, check_file, capsys):
    model_dir = _saved_model("bert", "lora", tmp_path)
    out = tmp_path / "onnx"
    assert _export(str(model_dir), "--check_file", str(check_file), "--output_dir", str(out)) == 0
    capsys.readouterr()
    outputs = {}
    for backend, directory in (("torch", model_dir), ("onnx", out)):
        assert cli.main(["predict", "--model_dir", str(directory), "--backend", backend, "--file", str(check_file),
                         "--output", str(tmp_path / f"{backend}.jsonl")]) == 0
        outputs[backend] = [json.loads(line) for line in (tmp_path / f"{backend}.jsonl").read_text().splitlines()]
    assert [r["label"] for r in outputs["onnx"]] == [r["label"] for r in outputs["torch"]]
    np.testing.assert_allclose([r["probabilities"]["pos"] for r in outputs["onnx"]],
                               [r["probabilities"]["pos"] for r in outputs["torch"]], atol=1e-5)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_parity_check_catches_a_graph_without_the_pooling(family, tmp_path, check_file, monkeypatch, capsys):
    """The bug put in by hand: the graph is traced with the pooling hooks taken off, as an exporter that loads the
    model again from disk without ftlab would trace it: the graph reads the first token's (encoder) or the last
    token's (decoder) state instead of the mean it was trained on. (A decoder trained with last-token pooling
    reads what its own head reads: no bug there to catch.)"""
    from ftlab.models import onnx

    traced = onnx.export_onnx

    def export_without_pooling(model, tokenizer, directory):
        for module in model.modules():
            module._forward_hooks.clear()
            module._forward_pre_hooks.clear()
        return traced(model, tokenizer, directory)

    monkeypatch.setattr(onnx, "export_onnx", export_without_pooling)
    model_dir = _saved_model(family, "lora", tmp_path, pooling="mean")
    out = tmp_path / "onnx"
    capsys.readouterr()
    assert _export(str(model_dir), "--check_file", str(check_file), "--output_dir", str(out)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: the export drifts from the model (fp32: ") and "--allow_drift" in error
    parity = json.loads((out / "export.json").read_text())["graphs"]["fp32"]["parity"]
    assert parity["label_agreement"] < 0.99 and parity["max_abs_logit_difference"] > 1e-2
    assert _export(str(model_dir), "--check_file", str(check_file), "--output_dir", str(out), "--allow_drift") == 0


def test_a_run_exports_with_its_test_split_card_and_inference_bench(tiny_model_dir, tmp_path, capsys):
    """A real (tiny) run, merged: its test split is the check, its cards carry its metrics and the reproducing
    command, and --bench times torch and both graphs side by side."""
    from ftlab.runs.plan import plan_run
    from ftlab.training.run import run_training

    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(120))
    run = tmp_path / "run"
    run_training(plan_run(["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                           "--label_column", "polarity", "--max_length", "32", "--epochs", "1", "--pooling", "mean",
                           "--merge", "--method", "lora", "--output_dir", str(run)]))
    card = (run / "merged" / "README.md").read_text()
    test = json.loads((run / "result.json").read_text())["metrics"]["test"]
    assert f"| test | {test['num_samples']} | {test['accuracy']:.4f} [" in card
    assert "python main.py --method lora --model " in card and "--pooling mean" in card and "--merge true" in card
    assert _export(str(run), "--quantize", "int8", "--bench", "--bench_texts", "6") == 0
    out = run / "onnx"
    record = json.loads((out / "export.json").read_text())
    assert record["check"]["texts"] == test["num_samples"] and record["graph"] == "model_int8.onnx"
    assert record["graphs"]["int8"]["parity"]["reference_accuracy"] == pytest.approx(test["accuracy"])
    assert [row["backend"] for row in record["bench"]] == ["torch", "onnx fp32", "onnx int8"]
    for row in record["bench"]:
        assert row["latency_ms_p50"] > 0 and row["throughput_texts"] == 6 and row["size_mb"] > 0
        assert row["peak_memory_mb"] is not None
    assert record["graphs"]["int8"]["size_bytes"] < record["graphs"]["fp32"]["size_bytes"]
    card = (out / "README.md").read_text()
    assert "python main.py export" in card and "--quantize int8" in card and "batch-1 latency p50" in card
    assert "onnx int8" in capsys.readouterr().out


def test_the_reproducing_command_reads_back_to_the_same_configuration():
    cfg = parse_config(["--method", "lora", "--lora_r", "16", "--seed", "3", "--max_length", "64", "--merge"])
    flags = command_line(cfg)
    assert flags == ["--method", "lora", "--max_length", "64", "--lora_r", "16", "--merge", "true", "--seed", "3"]
    assert parse_config(flags).to_dict() == cfg.to_dict()
    assert command_line(parse_config(["--method", "full"])) == ["--method", "full"]


BAD_INPUT = """
import sys
from ftlab import cli
rc = cli.main(sys.argv[1:])
assert not [name for name in ("torch", "transformers", "onnxruntime") if name in sys.modules], "loaded heavy"
sys.exit(rc)
"""


def test_bad_input_is_one_line_before_anything_heavy_loads(tmp_path, check_file):
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    (no_model / "result.json").write_text(json.dumps({"output_dir": str(no_model), "metrics": {}, "saved": {}}))
    prompt = tmp_path / "prompt"
    prompt.mkdir()
    (prompt / "adapter_config.json").write_text(json.dumps({"peft_type": "PROMPT_TUNING",
                                                            "base_model_name_or_path": "somewhere"}))
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text(json.dumps({"model_type": "bert", "label2id": {"neg": 0, "pos": 1}}))
    cases = {
        (str(no_model),): f"error: MODEL {no_model}: the run kept no model",
        (str(prompt), "--check_file", str(check_file)): "an adapter of --method prompt_tuning, which cannot be merged",
        (str(plain), "--quantize", "int4"): "error: argument --quantize: invalid choice: 'int4' (choose from 'int8', "
                                            "'fp16')",
        (str(plain),): "a model without its run's record, so there is no test split",
        (str(plain), "--check_file", str(check_file), "--push_to_hub", "me/tiny"):
            "error: --push_to_hub me/tiny: the hub is unreachable from here (offline)",
    }
    for args, expected in cases.items():
        proc = subprocess.run([sys.executable, "-c", BAD_INPUT, "export", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
