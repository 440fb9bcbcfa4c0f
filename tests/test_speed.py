"""The fast path and the bench command: precision choice, bucketed compilation, the FLOPs model, and the
reference-vs-default benchmark run end to end on a tiny model."""
import json

import pytest
import torch
from transformers import TrainerCallback

from ftlab.bench.recipes import peak_flops
from ftlab.bench.gemm_rate import block_gemm_shapes, measure_gemm_rate
from ftlab.models.flops import flops_model
from ftlab.errors import ConfigError
from ftlab.training.speed import resolve_dropout, resolve_precision
from ftlab.training.trainer import EpochSeededLengthGroupedSampler
from tests.conftest import nonzero_lora_b, run_main, synthetic_rows, write_csv

TINY = ("--text_column", "sentence", "--label_column", "polarity", "--max_length", "32")


@pytest.mark.parametrize("capabilities, expected", [
    ({"avx512_bf16": True, "amx_bf16": False}, "bf16"),
    ({"avx512_bf16": False, "amx_bf16": True}, "bf16"),
    ({"avx512_bf16": False, "amx_bf16": False}, "fp32"),  # bf16 is emulated there, ~10x slower
])
def test_precision_on_cpu(capabilities, expected, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert resolve_precision("auto") == expected
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp32") == "fp32"
    with pytest.raises(ConfigError, match="--precision fp16: .* needs a CUDA GPU"):
        resolve_precision("fp16")


def test_flops_model_matches_the_parameter_count(tmp_path):
    from transformers import DistilBertConfig

    DistilBertConfig().save_pretrained(tmp_path)  # DistilBERT-base's shape; the model is built on meta
    model = flops_model(str(tmp_path))
    # DistilBERT-base: 6 blocks of 4 attention projections (768x768) and two 768x3072 MLP linears = 42.47M
    # weights; a forward pass costs 2 FLOPs per weight and token, plus attention, which is small at one token.
    per_token = model.forward_flops_per_sample(1)
    assert per_token == pytest.approx(2 * 6 * (4 * 768 * 768 + 2 * 768 * 3072), rel=1e-3)
    # Attention grows quadratically: at 512 tokens it adds 2*512*768 per block and token.
    assert model.forward_flops_per_sample(512) / 512 - per_token == pytest.approx(2 * 6 * 2 * 511 * 768, rel=1e-6)
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("cpu (2 cores)") is None


def test_gemm_rate_counts_two_flops_per_multiply_add(monkeypatch):
    import time

    import torch

    shapes = block_gemm_shapes(hidden=32, ffn=64, rows=16)
    assert shapes == [(16, 32, 32)] * 4 + [(16, 32, 64), (16, 64, 32)]
    clock = iter([0.0, 0.4, 1.0])  # start, after round 1 (under a second), after round 2
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    flops_per_round = 2 * 16 * (4 * 32 * 32 + 2 * 32 * 64)
    assert measure_gemm_rate(shapes, torch.float32, seconds=1.0) == pytest.approx(2 * flops_per_round / 1.0)


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
def test_encoder_dropout_is_off_on_cpu_unless_asked_for_and_the_head_keeps_its_own(arch, tiny_model_dir,
                                                                                    tiny_bert_dir):
    import torch

    from ftlab.config import MethodArgs
    from ftlab.models.load import load_classifier
    from ftlab.models.sources import ModelSource

    assert resolve_dropout(None) == 0.0  # no CUDA here: the default for both dropouts on CPU
    assert resolve_dropout(0.1) == 0.1
    source = ModelSource("tiny", str(tiny_model_dir if arch == "distilbert" else tiny_bert_dir), "local")
    off = load_classifier(source, ["neg", "pos"], MethodArgs(method="lora"), attention_dropout=0.0,
                          hidden_dropout=0.0)
    kept = load_classifier(source, ["neg", "pos"], MethodArgs(method="lora"))

    def rates(model: torch.nn.Module) -> dict[str, float]:
        return {name: module.p for name, module in model.named_modules() if isinstance(module, torch.nn.Dropout)}

    kept_rates, off_rates = rates(kept), rates(off)
    head = kept_rates.pop("dropout")  # the head's own, before the classifier (DistilBERT 0.2, BERT 0.1)
    assert off_rates.pop("dropout") == head
    assert len(kept_rates) >= 5 and set(kept_rates.values()) == {0.1}  # the checkpoints' own in the encoder
    assert off_rates.keys() == kept_rates.keys() and set(off_rates.values()) == {0.0}
    if arch == "distilbert":
        assert (off.config.attention_dropout, off.config.dropout) == (0.0, 0.0)  # DistilBERT's names
        assert all(layer.attention.dropout.p == 0.0 for layer in off.distilbert.transformer.layer)
    else:  # BERT's head falls back to the hidden dropout unless pinned: it is pinned to what it was
        assert (off.config.hidden_dropout_prob, off.config.classifier_dropout) == (0.0, 0.1)


class LinearOutputDtypes(TrainerCallback):
    """The dtypes of every linear layer's output in the forward passes of training steps (forward hooks set when
    training begins, on the model the Trainer trains)."""

    def __init__(self):
        self.dtypes, self.calls = set(), 0

    def _seen(self, module, inputs, output):
        if module.training and torch.is_grad_enabled():  # a training step, not an evaluation
            self.dtypes.add(output.dtype)
            self.calls += 1

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(self._seen)


def test_bf16_training_on_cpu_is_recorded_with_its_profile(tiny_model_dir, tmp_path):
    from ftlab.runs.plan import plan_run
    from ftlab.training.run import run_training

    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    out = tmp_path / "run"
    linears = LinearOutputDtypes()
    record = run_training(plan_run(["--model", str(tiny_model_dir), "--dataset", str(data), *TINY, "--method",
                                      "lora", "--lr", "1e-2", "--epochs", "4", "--precision", "bf16",
                                      "--profile_steps", "3", "--output_dir", str(out)]), callbacks=[linears])
    assert record["precision"] == "bf16" and record["attention_dropout"] == record["hidden_dropout"] == 0.0
    # Inside the Trainer's steps the linears really compute in bf16 (base layers, adapters and head alike).
    assert linears.dtypes == {torch.bfloat16} and linears.calls > 1000
    assert record["metrics"]["test"]["accuracy"] >= 0.95
    profile = (out / "profile.txt").read_text()
    assert record["profile"] == str(out / "profile.txt")
    assert profile.startswith("torch.profiler: 3 optimizer steps") and "aten::mm" in profile


@pytest.mark.parametrize("use_dora", [False, True])
def test_adapter_input_casts_are_skipped_under_autocast_without_changing_a_bit(tiny_model_dir, use_dora):
    import torch

    from ftlab.config import MethodArgs
    from ftlab.models.load import load_classifier
    from ftlab.methods import skip_adapter_input_casts
    from ftlab.models.tuning import apply_method
    from ftlab.models.sources import ModelSource

    source = ModelSource("tiny", str(tiny_model_dir), "local")
    args = MethodArgs(method="lora", use_dora=use_dora)
    ids = torch.randint(5, 20, (8, 24))
    mask = torch.ones_like(ids)
    mask[:, 20:] = 0
    labels = torch.arange(8) % 2

    def step(skip: bool) -> tuple[list, int, int]:
        torch.manual_seed(0)
        model = apply_method(load_classifier(source, ["neg", "pos"], args, attention_dropout=0.0), args)
        nonzero_lora_b(model)
        model.eval()  # no dropout: both passes must see the same function
        switched = skip_adapter_input_casts(model, "bf16") if skip else 0
        with torch.profiler.profile() as profiler:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
        casts = sum(event.count for event in profiler.key_averages() if event.key == "aten::_to_copy")
        grads = [param.grad for param in model.parameters() if param.requires_grad]
        return [loss.detach(), *grads], casts, switched

    kept, casts_kept, _ = step(skip=False)
    skipped, casts_skipped, switched = step(skip=True)
    if use_dora:  # DoRA's variant does more with the input than a matmul: PEFT's cast stays
        assert switched == 0 and casts_skipped == casts_kept
        return
    # Of the 6 adapted linears per block, the attention output and MLP down projections read bf16 activations
    # (the others read the fp32 residual stream, where PEFT's cast does nothing): per block 2 adapters x 4 casts
    # fewer (to fp32 and back to bf16, forward and backward).
    assert switched == 12 and casts_kept - casts_skipped == 2 * 2 * 4
    for a, b in zip(kept, skipped, strict=True):
        assert torch.equal(a, b)
    assert skip_adapter_input_casts(torch.nn.Linear(2, 2), "fp32") == 0  # fp32: nothing is cast back


def test_length_grouped_order_depends_only_on_seed_and_epoch():
    lengths = [5, 30, 7, 12, 31, 2, 18, 9] * 8
    a, b = EpochSeededLengthGroupedSampler(8, lengths, seed=3), EpochSeededLengthGroupedSampler(8, lengths, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert sorted(a) == list(range(len(lengths)))


def test_torch_compile_compiles_once_per_bucket(tiny_model_dir, tmp_path):
    # Texts of 6-15 tokens padded to multiples of 16: one bucket, so a couple of graphs (train batch shape,
    # eval batch shape) instead of one per distinct batch length (8 with --pad_multiple 1, measured).
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    out = tmp_path / "run"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), *TINY, "--method", "lora",
                    "--lr", "1e-2", "--epochs", "2", "--torch_compile", "--torch_compile_backend", "aot_eager",
                    "--pad_multiple", "16", "--output_dir", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "result.json").read_text())
    assert 1 <= record["compiled_graphs"] <= 2
    assert record["metrics"]["test"]["accuracy"] == 1.0


def counted_forward_flops(model_dir, tokens: float) -> float:
    """The tiny DistilBERT encoder's forward FLOPs for one text of `tokens` tokens, counted by torch's
    FlopCounterMode rather than by a formula. Eager attention, whose matmuls it sees (it does not count the CPU
    SDPA kernel). Counted at 4 and 8 tokens: an encoder's forward costs a*T + b*T^2 (linears per token, attention
    per pair of tokens), which gives the cost at a mean length between whole numbers."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    per_token = {}
    for length in (4, 8):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=torch.randint(5, 20, (1, length)))
        encoder = counter.get_flop_counts()["DistilBertForSequenceClassification.distilbert.transformer"]
        per_token[length] = sum(encoder.values()) / length
    quadratic = (per_token[8] - per_token[4]) / 4
    return tokens * (per_token[4] - 4 * quadratic) + quadratic * tokens ** 2


def test_the_flops_model_counts_what_torch_counts(tiny_model_dir):
    for tokens in (3, 17, 32, 12.5):
        assert flops_model(str(tiny_model_dir)).forward_flops_per_sample(tokens) == pytest.approx(
            counted_forward_flops(tiny_model_dir, tokens), rel=1e-9)


def test_bench_runs_the_reference_and_the_default_recipe_side_by_side(tiny_model_dir, tmp_path):
    data = write_csv(tmp_path / "reviews.csv", synthetic_rows(400))
    bench_dir = tmp_path / "bench"
    proc = run_main("bench", "--methods", "lora", "--model", str(tiny_model_dir), "--dataset", str(data), *TINY,
                    "--lr", "1e-2", "--epochs", "2", "--bench_dir", str(bench_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((bench_dir / "bench.json").read_text())
    rows = {row["recipe"]: row for row in summary["rows"]}
    assert set(rows) == {"reference", "default"}
    assert rows["reference"]["speedup"] == 1.0
    assert rows["default"]["speedup"] == pytest.approx(
        rows["default"]["samples_per_second"] / rows["reference"]["samples_per_second"])
    for row in rows.values():
        assert row["samples_per_second"] > 0 and row["step_ms"] > 0 and row["test_accuracy"] == 1.0
        assert row["tokens_per_second"] > row["samples_per_second"]  # several real tokens per text
    # Each recipe really ran as specified: the records say so.
    reference = json.loads((bench_dir / "lora-reference" / "result.json").read_text())["config"]
    default = json.loads((bench_dir / "lora-default" / "result.json").read_text())["config"]
    assert reference["data"]["pad_to_max_length"] and reference["method"]["lora_dropout"] == 0.1
    assert not reference["speed"]["group_by_length"] and reference["optim"]["batch_size"] == 16
    assert not default["data"]["pad_to_max_length"] and default["speed"]["group_by_length"]
    assert default["method"]["lora_dropout"] == 0.0
    # The terminal gets the compact table within 100 columns; bench.md and bench.csv every column.
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100
    assert any(line.split()[:2] == ["lora", "default"] for line in proc.stdout.splitlines())
    assert "| lora | default |" in (bench_dir / "bench.md").read_text()
    assert (bench_dir / "bench.csv").read_text().splitlines()[2].startswith("lora,default,")
    # CPU utilisation: useful FLOP/s of the real tokens (the FLOPs model, LoRA = forward + backward through the
    # activations) over the GEMM rate this bench measured for the recipe's precision.
    rates = summary["gemm"]["rates"]
    assert summary["gemm"]["rows"] == 16 * 32 and rates["fp32"] > 0
    for recipe, row in rows.items():
        record = json.loads((bench_dir / f"lora-{recipe}" / "result.json").read_text())
        useful = row["samples_per_second"] * counted_forward_flops(tiny_model_dir, record["mean_train_tokens"]) * 2
        assert row["useful_flops_per_second"] == pytest.approx(useful)
        assert row["cpu_utilisation"] == pytest.approx(useful / rates[record["precision"]])
        assert row["mfu"] is None


@pytest.mark.parametrize("argv, message", [
    (["--methods", "lora,fancy"], "--methods 'lora,fancy': each item must be one of full, head, selective, bitfit, "
                                  "lora"),
    (["--recipes", "fast"], "--recipes 'fast': each item must be one of"),
    (["--lora_r", "0"], "--lora_r 0: must be"),
])
def test_bench_rejects_bad_flags_before_running_anything(argv, message, tmp_path):
    proc = run_main("bench", *argv, "--bench_dir", str(tmp_path / "bench"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {proc.stderr.strip()[7:]}"]
    assert message in proc.stderr
    assert not (tmp_path / "bench").exists()
