"""`predict`: loading a saved plain model or LoRA adapter directory and labelling texts, in-process on tiny models."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ftlab import cli
from ftlab.config import MethodArgs
from ftlab.errors import ConfigError, DataError, ModelSourceError
from ftlab.models.tuning import apply_method
from ftlab.predict import load_for_inference, main, predict
from tests.conftest import synthetic_rows

CUED = {"a good film and a great plot": "pos", "the movie was awful": "neg", "quite a lovely story": "pos",
        "the plot was terrible and boring": "neg"}


def _classifier(base_dir: Path, label_names: list[str]):
    """What training builds: the base checkpoint with the run's label names (and a fresh head if the count differs)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(base_dir, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                                        label2id={name: i for i, name in enumerate(label_names)})
    return AutoModelForSequenceClassification.from_pretrained(base_dir, config=config, ignore_mismatched_sizes=True)


def _train(model, tokenizer, classes: tuple[str, ...], *, steps: int, lr: float) -> None:
    """A few plain AdamW steps on cue-word texts: enough for the tiny model to pick up the cues."""
    torch.manual_seed(0)
    rows = synthetic_rows(16 * steps, classes=classes)
    label2id = model.config.label2id
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for start in range(0, len(rows), 16):
        texts, labels = zip(*rows[start:start + 16])
        batch = tokenizer(list(texts), padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([label2id[label] for label in labels])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture(scope="module")
def plain_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fully fine-tuned tiny classifier, saved as the merged/plain export does: save_pretrained + tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = _classifier(tiny_model_dir, ["neg", "pos"])
    # Full fine-tuning at 3e-3, not 1e-2: at 1e-2 the loss reaches ~0.003, then spikes back to 0.5-0.8, and where
    # it ends up after the spikes turns on rounding (a 1e-6 change of the start weights, or another CPU's fp32
    # kernels, flips "quite a lovely story" to neg). At 3e-3 it falls smoothly and lands on the same cue-word
    # model however the start is perturbed.
    _train(model, tokenizer, ("pos", "neg"), steps=15, lr=3e-3)
    out = tmp_path_factory.mktemp("plain")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _save_adapter(peft_model, tokenizer, directory: Path) -> None:
    """The contract for an adapter directory (ftlab.models.export.save_adapter does the same three calls)."""
    peft_model.save_pretrained(directory)  # adapter_config.json + adapter_model.safetensors (LoRA + head)
    peft_model.get_base_model().config.save_pretrained(directory)  # config.json: label names and count
    tokenizer.save_pretrained(directory)


def test_plain_model_predicts_the_cue_words(plain_model_dir):
    model, tokenizer = load_for_inference(str(plain_model_dir))
    assert not model.training
    texts = list(CUED)
    # batch_size 3 over 4 texts: two batches, the last one short, each padded to its own length.
    records = predict(model, tokenizer, texts, batch_size=3, max_length=32)
    assert [r["text"] for r in records] == texts
    assert [r["label"] for r in records] == list(CUED.values())
    for record in records:
        assert set(record["probabilities"]) == {"neg", "pos"}
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert record["label"] == model.config.id2label[record["label_id"]]
        assert record["probabilities"][record["label"]] == max(record["probabilities"].values()) > 0.5
    # Batching and padding do not change the answer: one text at a time gives the same probabilities.
    single = predict(model, tokenizer, texts, batch_size=1)
    for one, batched in zip(single, records):
        for name, p in one["probabilities"].items():
            assert batched["probabilities"][name] == pytest.approx(p, abs=1e-5)


def test_lora_adapter_dir_loads_to_the_trained_model(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    # A 3-label run on a 2-label base checkpoint: the base loads with a fresh head of another shape, so the
    # predictions come out right only if the label config and the adapter's saved head are both used.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    labels = ["neg", "neutral", "pos"]
    model = apply_method(_classifier(tiny_model_dir, labels), MethodArgs(method="lora"))
    _train(model, tokenizer, ("pos", "neg", "neutral"), steps=3, lr=1e-2)
    adapter_dir = tmp_path / "adapter"
    _save_adapter(model, tokenizer, adapter_dir)
    saved = {path.name for path in adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= saved

    loaded, loaded_tokenizer = load_for_inference(str(adapter_dir))
    assert not loaded.training
    assert [loaded.config.id2label[i] for i in range(3)] == labels
    batch = loaded_tokenizer(list(CUED), padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
        got = loaded(**batch).logits
    # LoRA's B starts at zero: the training steps make the deltas count, so an adapter that failed to load differs.
    assert all(param.abs().max() > 1e-3 for name, param in model.named_parameters() if "lora_B" in name)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    records = predict(loaded, loaded_tokenizer, list(CUED))
    assert [r["label_id"] for r in records] == expected.argmax(-1).tolist()
    assert all(set(r["probabilities"]) == set(labels) for r in records)


def test_adapter_without_the_head_it_needs_is_refused(tiny_model_dir, tmp_path):
    # --lora_head saves only the head's LoRA deltas; the head's own weights were freshly initialised (the base has
    # 2 labels, the run 3) and are in no file, so loading would give noise.
    from transformers import AutoTokenizer

    model = apply_method(_classifier(tiny_model_dir, ["a", "b", "c"]), MethodArgs(method="lora", lora_head=True))
    _save_adapter(model, AutoTokenizer.from_pretrained(tiny_model_dir), tmp_path / "adapter")
    with pytest.raises(ModelSourceError, match="classifier.weight.*--merge"):
        load_for_inference(str(tmp_path / "adapter"))


def test_main_prints_one_line_per_text(plain_model_dir, capsys):
    assert main(["--model_dir", str(plain_model_dir), "--max_length", "32", *CUED]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(CUED)
    for line, (text, label) in zip(lines, CUED.items()):
        printed_label, prob, printed_text = line.split("\t")
        assert (printed_label, printed_text) == (label, text[:80])
        assert 0.5 < float(prob) <= 1.0


@pytest.mark.parametrize("suffix", [".txt", ".csv", ".jsonl"])
def test_main_reads_a_file_and_writes_jsonl(suffix, plain_model_dir, tmp_path, capsys):
    texts = list(CUED)
    path = tmp_path / f"inputs{suffix}"
    if suffix == ".txt":
        path.write_text("\n".join(texts[:2]) + "\n\n" + "\n".join(texts[2:]) + "\n")  # the blank line is skipped
        column_args = []
    elif suffix == ".csv":
        path.write_text("id,review\n" + "".join(f'{i},"{t}"\n' for i, t in enumerate(texts)))
        column_args = ["--text_column", "review"]
    else:
        path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
        column_args = []
    output = tmp_path / "out" / "predictions.jsonl"
    assert main(["--model_dir", str(plain_model_dir), "--file", str(path), *column_args, "--batch_size", "2",
                 "--output", str(output)]) == 0
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["text"] for r in records] == texts
    assert [r["label"] for r in records] == list(CUED.values())
    assert all(set(r) == {"text", "label", "label_id", "probabilities"} for r in records)
    assert len(capsys.readouterr().out.splitlines()) == len(texts)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_main_writes_the_prediction_file_columns_for_parquet_and_csv(suffix, plain_model_dir, tmp_path):
    import pandas as pd

    output = tmp_path / f"predictions{suffix}"
    assert main(["--model_dir", str(plain_model_dir), *CUED, "--output", str(output)]) == 0
    frame = pd.read_parquet(output) if suffix == ".parquet" else pd.read_csv(output, dtype={"example_id": str})
    assert list(frame.columns) == ["example_id", "label", "prediction", "p_neg", "p_pos"]
    assert frame["example_id"].tolist() == ["0", "1", "2", "3"]  # the input's row numbers
    assert frame["label"].isna().all()  # unknown to predict
    assert [["neg", "pos"][i] for i in frame["prediction"]] == list(CUED.values())
    assert (frame[["p_neg", "p_pos"]].sum(axis=1) - 1).abs().max() < 1e-6


@pytest.mark.parametrize("argv, error, match", [
    (["--model_dir", "{tmp}/nowhere", "good"], ModelSourceError, "nowhere: no such directory"),
    (["--model_dir", "{tmp}", "good"], ModelSourceError, "neither config.json .* nor adapter_config.json"),
    (["--model_dir", "{model}", "good", "--file", "{tmp}/texts.txt"], ConfigError, "not both"),
    (["--model_dir", "{model}"], ConfigError, "no texts to label"),
    (["good"], ConfigError, "--model_dir"),
    (["--model_dir", "{model}", "--batch_size", "0", "good"], ConfigError, "'0' is not an integer >= 1"),
    (["--model_dir", "{model}", "--file", "{tmp}/missing.txt"], DataError, "missing.txt: no such file"),
    (["--model_dir", "{model}", "--file", "{tmp}/rows.csv", "--text_column", "review"], DataError,
     "no column 'review'"),
])
def test_bad_input_is_a_one_line_user_error(argv, error, match, plain_model_dir, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("good\n")
    (tmp_path / "rows.csv").write_text("text\ngood\n")
    argv = [arg.format(tmp=tmp_path, model=plain_model_dir) for arg in argv]
    with pytest.raises(error, match=match):
        main(argv)
    # Through the CLI: exit status 2 and a single `error: ...` line, no usage text.
    capsys.readouterr()
    assert cli.main(["predict", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and not captured.out
