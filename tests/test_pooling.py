"""--pooling: mean pooling through the architecture's own head, under every method, and kept through saving,
merging, chaining and predict."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from transformers import (AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification,
                          DistilBertConfig, DistilBertForSequenceClassification, RobertaConfig,
                          RobertaForSequenceClassification)

from ftlab import cli
from ftlab.config import MethodArgs
from ftlab.models.export import merged_model
from ftlab.methods import count_parameters
from ftlab.models.tuning import apply_method
from ftlab.models.pooling import apply_pooling, resolve_pooling
from tests.conftest import ROOT, build_tiny_model_dir, nonzero_lora_b, synthetic_rows, write_csv


def _small(model_cls, config_cls):
    torch.manual_seed(0)
    if config_cls is DistilBertConfig:
        config = DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=100)
    else:
        config = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            vocab_size=100)
    return model_cls(config).eval()


ARCHITECTURES = [(BertForSequenceClassification, BertConfig), (DistilBertForSequenceClassification, DistilBertConfig),
                 (RobertaForSequenceClassification, RobertaConfig)]


def _batches():
    """The same three texts (the second one shorter), padded to 8 and to 14 tokens."""
    torch.manual_seed(1)
    ids = torch.randint(5, 100, (3, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    pad = torch.ones(3, 6, dtype=torch.long)  # id 1: RoBERTa's padding id, an ordinary token for the others
    return ({"input_ids": ids, "attention_mask": mask},
            {"input_ids": torch.cat([ids, pad], 1), "attention_mask": torch.cat([mask, 0 * pad], 1)})


@pytest.mark.parametrize("model_cls, config_cls", ARCHITECTURES)
def test_mean_pooling_ignores_padding_and_feeds_the_masked_mean_to_the_head(model_cls, config_cls):
    plain = _small(model_cls, config_cls)
    model = copy.deepcopy(plain)
    apply_pooling(model, "mean")
    apply_pooling(model, "mean")  # attaching twice must not pool the pooled vector again
    short, padded = _batches()
    with torch.no_grad():
        states = plain.base_model(**short).last_hidden_state
        weights = short["attention_mask"].unsqueeze(-1).float()
        expected_mean = (states * weights).sum(1) / weights.sum(1)  # [CLS]/[SEP] in, padding out
        # What the head reads: the encoder's first position, now the mean.
        first_position = model.base_model(**short).last_hidden_state[:, 0]
        padded_first = model.base_model(**padded).last_hidden_state[:, 0]
        logits, padded_logits = model(**short).logits, model(**padded).logits
        cls_logits = plain(**short).logits
    torch.testing.assert_close(first_position, expected_mean)
    torch.testing.assert_close(padded_first, expected_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(padded_logits, logits, atol=1e-6, rtol=0)
    assert (logits - cls_logits).abs().max() > 1e-3  # the head does read something else than with cls
    assert model.config.ftlab_pooling == "mean"


def _trainable(model: torch.nn.Module) -> list[str]:
    return [name for name, param in model.named_parameters() if param.requires_grad]


@pytest.mark.parametrize("method", ["full", "head", "selective", "lora", "scratch_lora"])
def test_every_method_keeps_its_parameters_and_trains_through_the_mean(method):
    args = MethodArgs(method=method, lora_r=4, unfreeze_layers=1)
    cls_model = apply_method(_small(BertForSequenceClassification, BertConfig), args)
    model = _small(BertForSequenceClassification, BertConfig)
    apply_pooling(model, "mean")
    model = apply_method(model, args)
    assert _trainable(model) == _trainable(cls_model) and count_parameters(model) == count_parameters(cls_model)
    short, padded = _batches()
    model.train()
    model(**short, labels=torch.tensor([0, 1, 0])).loss.backward()
    # Every trained head weight gets a gradient through the mean; with a trainable encoder, so does a token state
    # other than the first (the mean reads them all, [CLS] pooling would not).
    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for name, g in grads.items() if "classifier" in name)
    if method in ("full", "selective"):
        assert grads["bert.encoder.layer.1.output.dense.weight"].abs().sum() > 0
    if method in ("lora", "scratch_lora"):
        nonzero_lora_b(model)  # so that merging changes the weights
        model.eval()
        with torch.no_grad():
            before = model(**short).logits
            merged = merged_model(model, method).eval()
            # The hooks sit on modules merging keeps: the merged model still reads the mean.
            torch.testing.assert_close(merged(**padded).logits, before, atol=1e-5, rtol=0)


def test_compiled_peft_model_pools_the_same_without_graph_breaks():
    from torch._dynamo.utils import counters

    model = _small(BertForSequenceClassification, BertConfig)
    apply_pooling(model, "mean")
    model = apply_method(model, MethodArgs(method="lora", lora_r=4)).eval()
    short, _ = _batches()
    counters.clear()
    with torch.no_grad():
        expected = model(**short).logits
        compiled = torch.compile(model, backend="aot_eager")(**short).logits
    # The hand-over of the mask between the hooks stays inside one graph.
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"], dict(counters["graph_break"])
    torch.testing.assert_close(compiled, expected)


def _sentence_transformers_dir(path: Path, mode: str) -> Path:
    (path / "1_Pooling").mkdir(parents=True)
    (path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (path / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": mode == "cls",
        "pooling_mode_mean_tokens": mode == "mean", "pooling_mode_max_tokens": False}))
    return path


def test_auto_follows_the_sentence_transformers_pooling_config(tmp_path):
    mean_dir = _sentence_transformers_dir(tmp_path / "mean", "mean")
    cls_dir = _sentence_transformers_dir(tmp_path / "cls", "cls")
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    assert resolve_pooling("auto", str(mean_dir)).used == "mean"
    assert resolve_pooling("auto", str(cls_dir)).used == "cls"
    assert resolve_pooling("auto", str(plain_dir)).used == "cls"
    assert resolve_pooling("cls", str(mean_dir)).used == "cls"  # an explicit value wins
    # A saved adapter's pooling wins over the base's config; one saved before pooling was a choice read [CLS].
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert resolve_pooling("auto", str(mean_dir), str(adapter)).used == "cls"
    (adapter / "config.json").write_text(json.dumps({"model_type": "bert", "ftlab_pooling": "mean"}))
    chained = resolve_pooling("auto", str(plain_dir), str(adapter))
    assert (chained.requested, chained.used) == ("auto", "mean") and str(adapter) in chained.reason


@pytest.mark.parametrize("argv, expected", [
    (["--pooling", "max"], "argument --pooling: invalid choice: 'max' (choose from 'auto', 'cls', 'mean', "
                           "'last', 'eos')"),
    (["--truncation", "middle"], ("argument --truncation: invalid choice: 'middle' (choose from 'head', 'tail', "
                                  "'head_tail')")),
    (["predict", "--model_dir", ".", "--truncation", "middle", "x"], "argument --truncation: invalid choice"),
])
def test_bad_pooling_or_truncation_is_one_error_line(argv, expected, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and expected in captured.err
    assert not captured.out


# --- a real run: tiny BERT, LoRA, mean pooling, head_tail truncation, adapter and merged model saved ---------------

# The tests that read the run share one worker under pytest-xdist, so that the run is made once.
SAME_RUN = pytest.mark.xdist_group("pooling-mean-run")
# fp32: the checks below compare a merged adapter's losses with the unmerged one's to 1e-5, which bf16 autocast
# (the default on CPUs with bf16 units) does not keep.
RUN_ARGS = ["--text_column", "sentence", "--label_column", "polarity", "--max_length", "10", "--truncation",
            "head_tail", "--epochs", "3", "--lr", "1e-2", "--batch_size", "16", "--precision", "fp32"]


@pytest.fixture(scope="module")
def mean_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """--pooling mean on a model with no sentence-transformers config (allowed, and recorded as asked); texts of
    up to 15 tokens cut head_tail to 10, so the cut decides some predictions."""
    root = tmp_path_factory.mktemp("mean-run")
    model_dir = build_tiny_model_dir(root / "tiny-bert", arch="bert")
    data = write_csv(root / "reviews.csv", synthetic_rows(240, seed=5))
    out, adapter = root / "run", root / "adapter"
    assert cli.main(["--model", str(model_dir), "--dataset", str(data), *RUN_ARGS, "--method", "lora",
                     "--pooling", "mean", "--save_adapter", str(adapter), "--merge",
                     "--output_dir", str(out)]) == 0
    return {"model": model_dir, "data": data, "out": out, "adapter": adapter,
            "record": json.loads((out / "result.json").read_text())}


@SAME_RUN
def test_mean_pooling_is_recorded_and_saved_with_the_model(mean_run):
    record = mean_run["record"]
    assert record["pooling"] == {"requested": "mean", "used": "mean", "reason": "--pooling mean"}
    assert record["truncation"] == "head_tail"
    for directory in (mean_run["out"] / "merged", mean_run["adapter"]):
        config = json.loads((directory / "config.json").read_text())
        assert (config["ftlab_pooling"], config["ftlab_truncation"], config["ftlab_max_length"]) == (
            "mean", "head_tail", 10)


def _test_split(mean_run):
    from ftlab.data.sources import load_raw
    from ftlab.data.splits import prepare_splits

    # The run's own split: same data seed and fractions, and splits are deterministic.
    split = prepare_splits(load_raw(str(mean_run["data"]), "sentence", "polarity"), str(mean_run["data"]),
                           validation_fraction=0.1, test_fraction=0.1, data_seed=42, max_train=2000, max_eval=250,
                           max_test=1000)
    return list(split.splits["test"]["text"]), [split.label_names[i] for i in split.splits["test"]["label"]]


@SAME_RUN
def test_predict_on_the_merged_mean_pooled_model_reproduces_the_runs_test_accuracy(mean_run):
    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    texts, truth = _test_split(mean_run)
    assert len(texts) == mean_run["record"]["metrics"]["test"]["num_samples"]
    probabilities = {}
    for directory in (mean_run["out"] / "merged", mean_run["adapter"]):
        model, tokenizer = load_for_inference(str(directory))
        records = predict(model, tokenizer, texts)  # the run's pooling, truncation and max length, as saved
        accuracy = sum(r["label"] == t for r, t in zip(records, truth)) / len(truth)
        assert accuracy == pytest.approx(mean_run["record"]["metrics"]["test"]["accuracy"])
        probabilities[directory.name] = torch.tensor([r["probabilities"]["pos"] for r in records])
    torch.testing.assert_close(probabilities["merged"], probabilities["adapter"], atol=1e-5, rtol=0)
    # Without the saved pooling (the plain model reading [CLS]) the same weights answer differently.
    plain = AutoModelForSequenceClassification.from_pretrained(mean_run["out"] / "merged")
    unpooled = predict(plain, tokenizer, texts)
    assert max(abs(r["probabilities"]["pos"] - p) for r, p in zip(unpooled, probabilities["merged"].tolist())) > 1e-3


@SAME_RUN
def test_docs_lines_load_the_merged_model_without_ftlab(mean_run):
    """The docs' loading snippet (docs/guide/predict.md), run as printed, gives predict's probabilities."""
    from ftlab.commands.predict import predict
    from ftlab.models.inference import load_for_inference

    page = (ROOT / "docs" / "guide" / "predict.md").read_text(encoding="utf-8")
    section = page[page.index("## Loading an exported model without ftlab"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    texts = ["good film and a very long plot the actor was quite boring and the scene was awful",
             "the movie was superb", "bad"]
    code = code.replace('"runs/imdb-lora/merged"', repr(str(mean_run["out"] / "merged")))
    code = re.sub(r"^texts = .*$", f"texts = {texts!r}", code, count=1, flags=re.MULTILINE)
    namespace: dict = {}
    exec(compile(code, "docs/guide/predict.md", "exec"), namespace)  # noqa: S102 (the page's own lines are tested)
    model, tokenizer = load_for_inference(str(mean_run["out"] / "merged"))
    expected = torch.tensor([[r["probabilities"][model.config.id2label[i]] for i in range(2)]
                             for r in predict(model, tokenizer, texts)])
    torch.testing.assert_close(namespace["probabilities"], expected, atol=1e-5, rtol=0)


@SAME_RUN
def test_chaining_an_adapter_into_head_training_keeps_its_pooling(mean_run, tmp_path):
    out = tmp_path / "head"
    assert cli.main(["--model", str(mean_run["model"]), "--dataset", str(mean_run["data"]), *RUN_ARGS,
                     "--method", "head", "--load_adapter", str(mean_run["adapter"]), "--eval_only",
                     "--output_dir", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert (record["pooling"]["requested"], record["pooling"]["used"]) == ("auto", "mean")
    assert str(mean_run["adapter"]) in record["pooling"]["reason"]
    # The adapter merged in and read through the mean: exactly the LoRA run's model, so exactly its test metrics.
    assert record["metrics"]["test"]["accuracy"] == mean_run["record"]["metrics"]["test"]["accuracy"]
    assert record["metrics"]["test"]["loss"] == pytest.approx(mean_run["record"]["metrics"]["test"]["loss"], abs=1e-5)
