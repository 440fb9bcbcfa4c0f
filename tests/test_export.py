"""Saving adapters, merging them, and chaining a saved adapter into another method."""
import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, TrainerCallback

from ftlab.config import MethodArgs
from ftlab.runs.plan import plan_run
from ftlab.models.export import merged_model
from ftlab.models.tuning import apply_method
from ftlab.training.run import run_training
from tests.conftest import nonzero_lora_b, run_main, synthetic_rows, write_csv

MERGE_ATOL = 1e-5  # fp32 re-association of W x + B A x vs (W + B A) x


def _batch():
    torch.manual_seed(1)
    inputs = torch.randint(5, 30, (8, 12))
    return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs)}


@pytest.mark.parametrize("method", ["lora", "scratch_lora"])
def test_merged_and_unmerged_give_the_same_logits(method, tiny_model_dir):
    model = apply_method(AutoModelForSequenceClassification.from_pretrained(tiny_model_dir),
                         MethodArgs(method=method, lora_r=4))
    nonzero_lora_b(model)
    model.eval()
    with torch.no_grad():
        before = model(**_batch()).logits
        merged = merged_model(model, method).eval()
        after = merged(**_batch()).logits
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert torch.allclose(before, after, atol=MERGE_ATOL), (before - after).abs().max()


def test_qlora_merges_in_full_precision(tmp_path):
    """The merged QLoRA model computes what the 4-bit model with its adapter computed: the dequantised base plus
    the LoRA update. (PEFT's own merge into the 4-bit layer re-quantises W + BA and loses most of BA.)"""
    import bitsandbytes as bnb
    from transformers import BertConfig, BertForSequenceClassification

    from ftlab.models.load import load_classifier
    from ftlab.models.sources import ModelSource

    # 64 wide: bitsandbytes' 4-bit blocks are 64 weights; no dropout, so the training-mode forward is deterministic
    config = BertConfig(vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    args = MethodArgs(method="qlora", lora_r=4)
    model = apply_method(load_classifier(ModelSource("bert", str(tmp_path), "local"), ["neg", "pos"], args), args)
    nonzero_lora_b(model)
    # Training mode: in eval mode bitsandbytes switches to a bf16 CPU kernel on CPUs with AVX512-BF16.
    model.train()
    with torch.no_grad():
        before = model(**_batch()).logits
        merged = merged_model(model, "qlora").train()
        after = merged(**_batch()).logits
    assert not any(isinstance(module, bnb.nn.Linear4bit) for module in merged.modules())
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert torch.allclose(before, after, atol=1e-4), (before - after).abs().max()


def test_adapter_saved_then_chained_into_head_training(tiny_model_dir, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(200))
    common = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
              "--label_column", "polarity", "--max_length", "32", "--epochs", "4", "--lr", "1e-2"]
    adapter = tmp_path / "adapter"
    first = run_main(*common, "--method", "lora", "--save_adapter", str(adapter), "--merge",
                     "--output_dir", str(tmp_path / "lora"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json"} <= {
        p.name for p in adapter.iterdir()}
    record = json.loads((tmp_path / "lora" / "result.json").read_text())
    # The merged model is the run's model (what predict loads for the run directory): no third copy.
    merged = str(tmp_path / "lora" / "merged")
    assert record["saved"] == {"adapter": str(adapter), "merged": merged, "model": merged}
    # The merged model is a plain transformers model: no peft needed, labels preserved.
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lora" / "merged")
    assert merged.config.id2label == {0: "neg", 1: "pos"}

    # Stage two, in this process so that a callback can read the run's own model: before its first step and after
    # its last, the frozen encoder computes what the merged LoRA model's encoder computes.
    merged.eval()
    batch = _batch()
    with torch.no_grad():
        expected = merged.base_model(**batch).last_hidden_state
        base = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
        assert (base.base_model(**batch).last_hidden_state - expected).abs().max() > 1e-2  # LoRA changed it
    encoder_outputs = EncoderOutputs(batch)
    chained = run_training(plan_run([*common, "--method", "head", "--load_adapter", str(adapter),
                                       "--output_dir", str(tmp_path / "head")]), callbacks=[encoder_outputs])
    assert len(encoder_outputs.seen) == 2
    for seen in encoder_outputs.seen:
        torch.testing.assert_close(seen, expected, rtol=0, atol=MERGE_ATOL)
    assert chained["trainable_params"] == (32 * 32 + 32) + (32 * 2 + 2)  # only the head trains in stage two
    assert chained["metrics"]["test"]["accuracy"] >= record["metrics"]["test"]["accuracy"] - 0.05


class EncoderOutputs(TrainerCallback):
    """The encoder's last hidden states on a fixed batch, in eval mode, when training begins and ends."""

    def __init__(self, batch):
        self.batch, self.seen = batch, []

    def _read(self, model):
        training = model.training
        model.eval()
        with torch.no_grad():
            self.seen.append(model.base_model(**self.batch).last_hidden_state)
        model.train(training)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._read(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._read(model)


def test_save_adapter_needs_an_adapter_method_and_merge_a_merging_one(tmp_path):
    proc = run_main("--method", "full", "--save_adapter", str(tmp_path / "a"), cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "--save_adapter needs a method that trains a PEFT adapter, not --method full" in proc.stderr
    proc = run_main("--method", "prompt_tuning", "--merge", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "--merge: --method prompt_tuning cannot be merged into a plain checkpoint (use --save_adapter)" in proc.stderr


def test_predict_reproduces_the_runs_test_accuracy(tiny_model_dir, tmp_path):
    """The saved model, merged or as base + adapter, labels the run's own test texts as well as the run scored."""
    from ftlab.data.sources import load_raw
    from ftlab.data.splits import prepare_splits
    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(300, seed=3))
    out, adapter = tmp_path / "run", tmp_path / "adapter"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                    "--label_column", "polarity", "--method", "lora", "--epochs", "2", "--lr", "3e-3",
                    "--max_length", "32", "--save_adapter", str(adapter), "--merge", "--output_dir", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "result.json").read_text())
    # The same split the run made (same data seed and fractions): splits are deterministic.
    split = prepare_splits(load_raw(str(data), "sentence", "polarity"), str(data), validation_fraction=0.1,
                           test_fraction=0.1, data_seed=42, max_train=None, max_eval=None, max_test=None)
    test = split.splits["test"]
    assert len(test) == record["metrics"]["test"]["num_samples"]
    for directory in (out / "merged", adapter):
        model, tokenizer = load_for_inference(str(directory))
        labels = [row["label"] for row in predict(model, tokenizer, list(test["text"]), max_length=32)]
        truth = [split.label_names[i] for i in test["label"]]
        accuracy = sum(p == t for p, t in zip(labels, truth)) / len(truth)
        assert accuracy == pytest.approx(record["metrics"]["test"]["accuracy"])
