"""`predict`: loading a saved plain model or LoRA adapter directory and labelling texts, in-process on tiny models;
a run's own directory, seed directory and checkpoints give the run's predictions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ftlab import cli
from ftlab.config import MethodArgs
from ftlab.errors import ConfigError, DataError, ModelSourceError
from ftlab.models.tuning import apply_method
from ftlab.commands import predict as predict_command
from ftlab.commands.predict import predict
from ftlab.models.inference import load_for_inference
from tests.conftest import synthetic_rows, write_csv

CUED = {"a good film and a great plot": "pos", "the movie was awful": "neg", "quite a lovely story": "pos",
        "the plot was terrible and boring": "neg"}


def main(argv: list[str]) -> int:
    """The predict command without the dispatcher around it: its errors are raised, not printed."""
    return predict_command.prepare(argv).run(None)


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
    # lr 1e-2 learned the cue words with two threads and not with one (float order): lower, and longer
    _train(model, tokenizer, ("pos", "neg"), steps=30, lr=3e-3)
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
    # Latin-1, as training says it (before: a UnicodeDecodeError traceback).
    (["--model_dir", "{model}", "--file", "{tmp}/latin1.csv"], DataError,
     r"^--file .*latin1.csv: not UTF-8 text \(byte 0xe9 at offset 13\); save it as UTF-8$"),
    (["--model_dir", "{model}", "good", "--output", "{tmp}"], ConfigError, "a directory; --output names the file"),
])
def test_bad_input_is_a_one_line_user_error(argv, error, match, plain_model_dir, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("good\n")
    (tmp_path / "rows.csv").write_text("text\ngood\n")
    (tmp_path / "latin1.csv").write_bytes("text\ngood\ncafé\n".encode("latin-1"))
    argv = [arg.format(tmp=tmp_path, model=plain_model_dir) for arg in argv]
    with pytest.raises(error, match=match):
        main(argv)
    # Through the CLI: exit status 2 and a single `error: ...` line, no usage text.
    capsys.readouterr()
    assert cli.main(["predict", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and not captured.out


def _texts_of(run_dir: Path, rows: list[tuple[str, str]]) -> tuple[list[str], "pd.DataFrame"]:  # noqa: F821
    """The run's own test texts (example id train/<row>: that row of the CSV) and its test predictions file."""
    import pandas as pd

    frame = pd.read_parquet(run_dir / "predictions" / "test.parquet")
    return [rows[int(example_id.split("/")[1])][0] for example_id in frame["example_id"]], frame


def _predicted(model_dir: Path, texts: list[str], tmp_path: Path, capsys) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    inputs, output = tmp_path / "texts.txt", tmp_path / "predicted.parquet"
    inputs.write_text("\n".join(texts) + "\n")
    assert main(["--model_dir", str(model_dir), "--file", str(inputs), "--output", str(output)]) == 0
    capsys.readouterr()
    return pd.read_parquet(output)


def _same_as_the_run(predicted, frame) -> None:
    """The run's labels (p_neg, p_pos: not LABEL_0, LABEL_1), predictions and probabilities."""
    assert [column for column in predicted.columns if column.startswith("p_")] == ["p_neg", "p_pos"]
    assert predicted["prediction"].tolist() == frame["prediction"].tolist()
    np.testing.assert_allclose(predicted[["p_neg", "p_pos"]].to_numpy(), frame[["p_neg", "p_pos"]].to_numpy(),
                               atol=1e-5)


def test_a_finished_run_keeps_only_its_model_and_predict_on_it_gives_its_own_predictions(tiny_model_dir, tmp_path,
                                                                                         capsys):
    """The default (--keep_checkpoints none): no checkpoint, no optimizer state; <run>/model is a full fine-tune
    with the run's labels and (non-default for this model) mean pooling, and predict on the run directory gives
    the run's test predictions."""
    rows = synthetic_rows(300, seed=3)
    data = write_csv(tmp_path / "reviews.csv", rows)
    run = tmp_path / "run"
    assert cli.main(["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence",
                     "--label_column", "polarity", "--method", "full", "--pooling", "mean", "--epochs", "2",
                     "--lr", "1e-3", "--max_length", "32", "--precision", "fp32", "--output_dir", str(run)]) == 0
    capsys.readouterr()
    assert not list(run.glob("checkpoint-*")) and not list(run.rglob("optimizer.pt"))
    assert json.loads((run / "model" / "config.json").read_text())["ftlab_pooling"] == "mean"
    texts, frame = _texts_of(run, rows)
    _same_as_the_run(_predicted(run, texts, tmp_path, capsys), frame)


def test_predict_on_a_seed_run_and_its_checkpoints_gives_the_runs_labels_pooling_and_probabilities(
        tiny_model_dir, tmp_path, capsys):
    """A LoRA run of one seed keeping all its checkpoints: its directory, its seed directory and its last
    checkpoint (the final model) give its test predictions; a checkpoint without the classifier config (as runs
    before this one wrote them) takes the labels and pooling from the run's record. --keep_checkpoints best keeps
    the checkpoint that was tested, and no other."""
    rows = synthetic_rows(300, seed=3)
    data = write_csv(tmp_path / "reviews.csv", rows)
    run = tmp_path / "run"
    flags = ["--model", str(tiny_model_dir), "--dataset", str(data), "--text_column", "sentence", "--label_column",
             "polarity", "--method", "lora", "--pooling", "mean", "--epochs", "2", "--lr", "3e-3", "--max_length",
             "32", "--precision", "fp32"]
    assert cli.main([*flags, "--seeds", "1", "--keep_checkpoints", "all", "--save_total_limit", "2",
                     "--output_dir", str(run)]) == 0
    capsys.readouterr()
    checkpoints = sorted(run.glob("seed1/checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(checkpoints) == 2 and all((path / "optimizer.pt").is_file() for path in checkpoints)
    texts, frame = _texts_of(run / "seed1", rows)
    for directory in (run, run / "seed1", checkpoints[-1]):
        _same_as_the_run(_predicted(directory, texts, tmp_path, capsys), frame)
    (checkpoints[-1] / "config.json").unlink()
    _same_as_the_run(_predicted(checkpoints[-1], texts, tmp_path, capsys), frame)

    best = tmp_path / "best"
    assert cli.main([*flags, "--keep_checkpoints", "best", "--load_best", "--save_total_limit", "2",
                     "--output_dir", str(best)]) == 0
    record = json.loads((best / "result.json").read_text())
    assert [path.name for path in best.glob("checkpoint-*")] == [Path(record["best_checkpoint"]).name]


def test_predict_refuses_a_directory_of_several_seeds_or_without_a_model(tmp_path, capsys):
    for seed in (1, 2):
        (tmp_path / "runs" / f"seed{seed}").mkdir(parents=True)
        (tmp_path / "runs" / f"seed{seed}" / "config.yaml").write_text("{}")
    assert cli.main(["predict", "--model_dir", str(tmp_path / "runs"), "good"]) == 2
    assert capsys.readouterr().err == (f"error: --model_dir {tmp_path / 'runs'} holds the runs of 2 seeds (seed1, "
                                       f"seed2): give one of them, e.g. --model_dir {tmp_path / 'runs' / 'seed1'}\n")
    assert cli.main(["predict", "--model_dir", str(tmp_path / "runs" / "seed1"), "good"]) == 2
    assert "an unfinished run without a complete checkpoint" in capsys.readouterr().err
