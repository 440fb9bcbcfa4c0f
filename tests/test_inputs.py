"""Malformed inputs, as a new user meets them: every one ends with exit code 2 and one line `error: ...` naming
the problem, never a traceback; the inputs that are valid after all (very long texts, float labels, rows without
a label among labelled ones) train.

In-process through ftlab.cli.main (the whole command, minus a new interpreter); one case runs main.py in a real
subprocess to show what reaches a terminal."""
import json
import logging
import os
import subprocess
import sys

import pandas as pd
import pytest
from transformers import AutoTokenizer

from ftlab.cli import main
from tests.conftest import ROOT, run_main, synthetic_rows, write_csv

COLUMNS = ["--text_column", "sentence", "--label_column", "polarity"]


def _write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def _rows_csv(rows, separator=","):
    return "sentence,polarity\n".replace(",", separator) + "".join(
        f"{text}{separator}{label}\n" for text, label in rows)


CORPUS = {
    # name: (file name, content, the message the error line must hold)
    "empty": ("empty.csv", "", "the file has no data rows"),
    "header only": ("header.csv", "sentence,polarity\n", "the file has no data rows"),
    "binary": ("binary.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
               "a binary file, not .csv text (NUL byte at offset 8)"),
    "not UTF-8": ("latin1.csv", _rows_csv(synthetic_rows(20)).encode("utf-8") + "café,pos\n".encode("latin-1"),
                  "not UTF-8 text (byte 0xe9 at offset"),
    "wrong delimiter": ("semicolons.csv", _rows_csv(synthetic_rows(40), ";"),
                        "no text column 'sentence'; its columns are sentence;polarity (choose with --text_column); "
                        "the header looks separated by semicolons"),
    "no labels at all": ("unlabelled.csv", _rows_csv([(text, "") for text, _ in synthetic_rows(40)]),
                         "no row of the train split has a label"),
    "one class": ("one_class.csv", _rows_csv(synthetic_rows(100, classes=("pos",))),
                  "the training split has a single class ('pos')"),
    # Numbers that are not class ids are a regression now (ftlab.data.labels); names, one per row, are an id.
    "an id column as labels": ("ids.csv", _rows_csv((text, f"user{i}")
                                                    for i, (text, _) in enumerate(synthetic_rows(60))),
                               "column 'polarity' looks like an id, not classes; choose the class column with "
                               "--label_column"),
    "two rows": ("two.csv", _rows_csv([("good film", "pos"), ("bad film", "neg")]),
                 "2 training rows are too few to carve validation and test of at least 10 rows each from and keep 2 "
                 "to train on: it needs at least 95 rows"),
    "duplicate rows only": ("duplicates.csv", _rows_csv([("the film was good", "pos")] * 100),
                            "the training split has a single class ('pos')"),
    "broken JSON lines": ("broken.jsonl", '{"sentence": "a good film", "polarity": "pos"}\n'
                                          '{"sentence": "a bad film", "polarity": neg}\n',
                          "cannot read it as .jsonl: line 2 is not valid JSON"),
}


@pytest.mark.parametrize("case", CORPUS)
def test_malformed_dataset_is_one_error_line(case, tiny_model_dir, tmp_path, capsys):
    name, content, message = CORPUS[case]
    data = _write(tmp_path / name, content)
    code = main(["--model", str(tiny_model_dir), "--dataset", str(data), *COLUMNS, "--max_length", "32",
                 "--output_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: --dataset {data}: "), err
    assert message in err[0]
    assert not (tmp_path / "run").exists()


def test_a_directory_that_is_not_a_dataset_is_one_error_line(tiny_model_dir, tmp_path, capsys):
    # As root (the CI container) no directory is unreadable by permissions, so the unreadable directory here is
    # one datasets cannot read: files, but no save_to_disk layout.
    folder = tmp_path / "exports"
    folder.mkdir()
    write_csv(folder / "part-0.csv", synthetic_rows(20))
    code = main(["--model", str(tiny_model_dir), "--dataset", str(folder), *COLUMNS, "--max_length", "32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: --dataset {folder}: cannot read it as a save_to_disk directory")


@pytest.mark.parametrize("model, message", [
    ("{tmp}/no_config", "--model {tmp}/no_config: the directory has no config.json"),
    ("/nonexistent/model", "--model /nonexistent/model: no such directory"),
    ("{tmp}/reviews.csv", "--model {tmp}/reviews.csv: a file, not a model directory"),
])
def test_a_local_model_path_is_checked_with_the_flags(model, message, tmp_path):
    """Checked in config validation: a subprocess shows the error comes before torch is imported."""
    (tmp_path / "no_config").mkdir()
    write_csv(tmp_path / "reviews.csv", synthetic_rows(20))
    model = model.format(tmp=tmp_path)
    code = (f"import sys; from ftlab.cli import main; code = main(['--model', {model!r}]); "
            f"assert 'torch' not in sys.modules and 'transformers' not in sys.modules; sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message.format(tmp=tmp_path)}"), lines


def test_max_length_beyond_the_models_positions_names_both(tiny_model_dir, capsys):
    assert main(["--model", str(tiny_model_dir), "--max_length", "1024"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --max_length 1024: {tiny_model_dir} takes at most 512 tokens per text "
        f"(max_position_embeddings 512); use --max_length 512 or less")


def test_what_reaches_the_terminal_is_one_line(tiny_model_dir, tmp_path):
    data = _write(tmp_path / "reviews.csv", CORPUS["binary"][1])
    proc = run_main("--model", str(tiny_model_dir), "--dataset", str(data), *COLUMNS, "--max_length", "32",
                    cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --dataset {data}: a binary file, not .csv text (NUL byte at offset 8)"
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("four_bit", [False, True])
def test_the_4bit_kernel_notices_reach_only_a_4bit_run(four_bit, caplog):
    """On AVX512-BF16 CPUs bitsandbytes asks `kernels` for its 4-bit CPU kernel when peft imports it; offline,
    kernels warns that it skips the publisher's trust check. The same call here, on any CPU."""
    from kernels import get_kernel

    from ftlab.runtime import quiet_library_noise

    loggers = {name: logging.getLogger(name).level for name in ("kernels", "bitsandbytes.backends.cpu.ops")}
    try:
        quiet_library_noise(four_bit=four_bit)
        with pytest.raises(ValueError, match="not available in the local cache"):
            get_kernel("kernels-community/quantization-bitsandbytes", version=1)
    finally:
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
    assert ("Skipping publisher trust check" in caplog.text) == four_bit


def test_long_texts_float_labels_and_unlabelled_rows_are_valid(tiny_model_dir, tmp_path, capsys, cache_dir):
    """Decided as valid input: a text far beyond --max_length is truncated; a label column of floats (what pandas
    reads when a numeric column has an empty cell) holds classes "0" and "1"; rows without a label are dropped
    and said so."""
    # Ten texts thousands of tokens long, so that some of them land in the training split.
    rows = [(" ".join([text] * (400 + i)) if i < 10 else text, "1.0" if label == "pos" else "0.0")
            for i, (text, label) in enumerate(synthetic_rows(200))]
    rows += [("an unlabelled review", ""), ("another one", "")]
    data = _write(tmp_path / "reviews.csv", _rows_csv(rows))
    out = tmp_path / "run"
    assert main(["--model", str(tiny_model_dir), "--dataset", str(data), *COLUMNS, "--max_length", "32",
                 "--epochs", "4", "--lr", "1e-2", "--output_dir", str(out)]) == 0
    record = json.loads((out / "result.json").read_text())
    assert record["data"]["label_names"] == ["0", "1"]
    assert "dropped 2 rows without a label from the train split" in record["data"]["notes"]
    assert sum(record["data"]["sizes"].values()) == 200
    # Each training text's own length: the long ones cut to exactly --max_length (special tokens included), the
    # others untouched. The training split is what the run did not predict on.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    evaluated = {example_id for split in ("validation", "test")
                 for example_id in pd.read_parquet(out / "predictions" / f"{split}.parquet")["example_id"]}
    train_rows = [i for i in range(200) if f"train/{i}" not in evaluated]
    lengths = [len(tokenizer(rows[i][0])["input_ids"]) for i in train_rows]
    assert len(train_rows) == 160 and sum(length > 32 for length in lengths) >= 3
    assert record["mean_train_tokens"] == pytest.approx(
        sum(32 if length > 32 else length for length in lengths) / 160, rel=1e-12)
    assert record["metrics"]["test"]["accuracy"] >= 0.9
    assert "error" not in capsys.readouterr().err


# The cases a new user met (issue 33), each with the one line it now ends with. Every one is refused with the
# flags, before torch, transformers, datasets or peft load: a subprocess shows what was imported.
LIGHT_CASES = {
    "an existing file as --output_dir": (["--output_dir", "{tmp}/my.csv"],
                                         "error: --output_dir {tmp}/my.csv: a file, not a directory; name a "
                                         "directory to write into"),
    "fp16 on a CPU": (["--precision", "fp16"],
                      "error: --precision fp16: mixed precision with fp16 needs a CUDA GPU, and this machine shows "
                      "none; use fp32, bf16 or auto on CPU"),
    "a negative curve size": (["curve", "--sizes", "-10,100"],
                              "error: --sizes '-10,100': '-10' is neither a positive integer nor 'all'"),
    "a LoRA flag searched for head": (["search", "--method", "head", "--space", "lora_r=4,8"],
                                      "error: --space lora_r=4,8: --lora_r does not affect --method head; search it "
                                      "with a method that reads it, or leave it out"),
    "a mistyped command": (["reprot", "runs"], "error: unknown command 'reprot' (did you mean 'report'?)"),
    "--resume auto on a finished run of another configuration": (
        ["--output_dir", "{tmp}/finished", "--resume", "auto", "--lr", "2e-3"],
        "error: --resume auto: {tmp}/finished holds a finished run with another configuration (--lr 0.001 there, "
        "0.002 now), so it is not the run asked for and would be skipped; choose another --output_dir, or drop "
        "--resume and pass --overwrite_output_dir to replace it"),
}


def _finished_run(directory, *flags):
    """A run directory as a finished run leaves it, as far as the flags' checks read it: its record."""
    from ftlab.runs.plan import plan_run

    directory.mkdir()
    record = {"output_dir": str(directory), "metrics": {}, "config": plan_run(list(flags)).to_dict()}
    (directory / "result.json").write_text(json.dumps(record))


@pytest.mark.parametrize("case", LIGHT_CASES)
def test_what_a_new_user_met_is_one_line_before_anything_loads(case, tmp_path):
    argv, expected = LIGHT_CASES[case]
    (tmp_path / "my.csv").write_text("text,label\n")
    _finished_run(tmp_path / "finished", "--lr", "1e-3")
    argv = [arg.format(tmp=tmp_path) for arg in argv]
    code = (f"import sys; from ftlab.cli import main; code = main({argv!r}); "
            f"assert not {{'torch', 'transformers', 'datasets', 'peft'}} & set(sys.modules); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [expected.format(tmp=tmp_path)]


def test_a_finished_run_of_the_same_configuration_is_skipped_and_said_so(tmp_path, capsys):
    _finished_run(tmp_path / "finished", "--lr", "1e-3")
    assert main(["--output_dir", str(tmp_path / "finished"), "--resume", "auto", "--lr", "1e-3"]) == 0
    said = " ".join(capsys.readouterr().out.split())  # wrapped at 100 columns where the path is long
    assert said == f"[ftlab] {tmp_path / 'finished'}: finished before (result.json), skipped"


def test_lora_targets_that_name_no_layer_stop_before_the_data_and_weights_load(tiny_model_dir, tmp_path, capsys):
    code = main(["--model", str(tiny_model_dir), "--lora_target_modules", "foo_proj", "--output_dir",
                 str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 2 and captured.err == (
        "error: --lora_target_modules foo_proj: no layer of distilbert matches (--method lora); its linear layers "
        "are named classifier, k_lin, lin1, lin2, out_lin, pre_classifier, q_lin, v_lin\n")
    assert "[ftlab] data" not in captured.out and not (tmp_path / "run").exists()


def test_a_semicolon_file_whose_texts_hold_commas_gets_the_separator_hint(tiny_model_dir, tmp_path, capsys):
    """A comma in some texts makes their rows two fields where the header has one: the reader's error, not
    datasets' "An error occurred while generating the dataset", and the separator the header shows."""
    rows = [(text.replace(" ", ", ", i % 2), label) for i, (text, label) in enumerate(synthetic_rows(100))]
    data = _write(tmp_path / "semicolons.csv", _rows_csv(rows, ";"))
    assert main(["--model", str(tiny_model_dir), "--dataset", str(data), *COLUMNS, "--max_length", "32"]) == 2
    assert capsys.readouterr().err == (
        f"error: --dataset {data}: cannot read it as .csv: Error tokenizing data. C error: Expected 1 fields in "
        f"line 3, saw 2; the header looks separated by semicolons: a .csv must be comma-separated, a .tsv "
        f"tab-separated\n")


def test_a_file_of_six_rows_leaves_splits_too_small_to_score(tiny_model_dir, tmp_path, capsys):
    data = _write(tmp_path / "six.csv", _rows_csv(synthetic_rows(6)))
    assert main(["--model", str(tiny_model_dir), "--dataset", str(data), *COLUMNS, "--max_length", "32"]) == 2
    assert capsys.readouterr().err == (
        f"error: --dataset {data}: 6 training rows are too few to carve validation and test of at least 10 rows "
        f"each from and keep 2 to train on: it needs at least 95 rows\n")
