import datasets
import pytest

from ftlab.data.sources import RawData, load_raw
from ftlab.data.splits import prepare_splits
from ftlab.errors import DataError
from tests.conftest import synthetic_rows, write_csv

SPLIT_ARGS = dict(validation_fraction=0.1, test_fraction=0.1, data_seed=42, max_train=None, max_eval=None,
                  max_test=None)


def _prepare(raw: RawData, **overrides) -> "PreparedData":  # noqa: F821
    return prepare_splits(raw, "test-data", **{**SPLIT_ARGS, **overrides})


def _raw(splits: dict[str, list[tuple]], origin="local") -> RawData:
    return RawData(datasets.DatasetDict({name: datasets.Dataset.from_dict(
        {"text": [r[0] for r in rows], "label": [r[1] for r in rows]}) for name, rows in splits.items()}),
        origin, "text", "label")


def test_local_csv_with_custom_columns_and_string_labels(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", synthetic_rows(200))
    raw = load_raw(str(path), "sentence", "polarity")
    data = _prepare(raw)
    assert data.label_names == ["neg", "pos"]
    assert data.sizes() == {"train": 160, "validation": 20, "test": 20}
    assert data.splits["train"].features["label"].names == ["neg", "pos"]
    # Stratified carving keeps both classes balanced in every split.
    assert sorted(data.splits["validation"]["label"]).count(0) == 10


def test_missing_column_lists_the_columns(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", synthetic_rows(20))
    with pytest.raises(DataError, match=r"^--dataset test-data: split 'train' has no text column 'text'; its columns "
                                        r"are sentence, polarity \(choose with --text_column\)$"):
        _prepare(load_raw(str(path), None, None))
    with pytest.raises(DataError, match=r"has no label column 'label'; .* \(choose with --label_column\)$"):
        _prepare(load_raw(str(path), "sentence", None))


def test_a_file_read_as_one_column_names_its_separator(tmp_path):
    path = tmp_path / "reviews.csv"
    for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        path.write_text(f"text{separator}label\na good film{separator}pos\na bad film{separator}neg\n")
        with pytest.raises(DataError, match=rf"\(choose with --text_column\); the header looks separated by {name}: "
                                            r"a .csv must be comma-separated, a .tsv tab-separated$"):
            _prepare(load_raw(str(path), None, None))
    path.write_text("review\na good film\n")  # one column, no other separator in its name: no hint
    with pytest.raises(DataError, match=r"its columns are review \(choose with --text_column\)$"):
        _prepare(load_raw(str(path), None, None))
    path.write_text("sentence,label\na good film,pos\n")  # two columns: a wrong name, not a wrong separator
    with pytest.raises(DataError, match=r"its columns are sentence, label \(choose with --text_column\)$"):
        _prepare(load_raw(str(path), None, None))


def test_three_classes_share_one_mapping_across_splits():
    rows = synthetic_rows(120, classes=("pos", "neg", "neutral"))
    data = _prepare(_raw({"train": rows, "test": rows[:12]}))
    assert data.label_names == ["neg", "neutral", "pos"]
    assert data.num_labels == 3
    # The test split came with its own rows: decoded through the shared mapping, its labels are the source strings.
    test = data.splits["test"]
    assert test.features["label"].names == data.label_names
    assert [data.label_names[i] for i in test["label"]] == [label for _, label in rows[:12]]
    assert sorted(set(test["label"])) == [0, 1, 2]


def test_empty_texts_are_dropped_and_counted(capsys):
    rows = synthetic_rows(100) + [("", "pos"), ("   ", "neg"), (None, "pos")]
    data = _prepare(_raw({"train": rows}))
    assert sum(data.sizes().values()) == 100
    assert "dropped 3 empty or missing texts from the train split" in capsys.readouterr().out


def test_nothing_left_after_dropping_empty_texts_fails():
    with pytest.raises(DataError, match="split 'train' has no non-empty texts left"):
        _prepare(_raw({"train": [("", "pos"), (None, "neg")]}))


def test_empty_split_fails():
    with pytest.raises(DataError, match="^--dataset test-data: the validation split is empty$"):
        _prepare(_raw({"train": synthetic_rows(20), "validation": []}))


def test_single_class_training_split_fails():
    rows = [(text, "pos") for text, _ in synthetic_rows(100)]
    with pytest.raises(DataError, match=r"the training split has a single class \('pos'\)"):
        _prepare(_raw({"train": rows}))


def test_unlabelled_test_split_falls_back_to_validation():
    rows = [(t, 1 if label == "pos" else 0) for t, label in synthetic_rows(150)]
    data = _prepare(_raw({"train": rows[:100], "validation": rows[100:],
                          "test": [(t, -1) for t, _ in rows[100:]]}))
    assert data.test_is_validation
    assert data.splits["test"]["text"] == data.splits["validation"]["text"] == [t for t, _ in rows[100:]]
    assert data.label_names == ["0", "1"]  # -1 marks a hidden label, not a class
    assert data.notes == ["the test split has no labels: test figures are computed on the validation split"]
    # Hidden labels left as empty cells: the same.
    data = _prepare(_raw({"train": rows[:100], "validation": rows[100:],
                          "test": [(t, None) for t, _ in rows[100:]]}))
    assert data.test_is_validation and data.sizes() == {"train": 100, "validation": 50, "test": 50}
    assert _prepare(_raw({"train": rows[:100], "test": rows[100:]})).test_is_validation is False


def test_subsamples_are_stratified_and_repeatable():
    rows = synthetic_rows(400)
    first = _prepare(_raw({"train": rows}), max_train=50, max_eval=10, max_test=10)
    second = _prepare(_raw({"train": rows}), max_train=50, max_eval=10, max_test=10)
    assert first.sizes() == {"train": 50, "validation": 10, "test": 10}
    for split in ("train", "validation", "test"):  # each subsample is seeded, --max_eval/test_samples' too
        assert first.splits[split]["text"] == second.splits[split]["text"]
    assert first.origin == "local"  # the record's data origin: ids pair runs only within one origin
    assert first.splits["train"]["label"].count(0) == 25
    other_seed = _prepare(_raw({"train": rows}), max_train=50, max_eval=10, max_test=10, data_seed=1)
    assert other_seed.splits["train"]["text"] != first.splits["train"]["text"]


def test_sst2_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="SST-2 has no offline mirror.*save_to_disk"):
        load_raw("sst2", None, None)


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet", "dir"])
def test_local_formats_load_the_same_rows(suffix, tmp_path):
    rows = synthetic_rows(100)
    frame = datasets.Dataset.from_dict({"text": [r[0] for r in rows], "label": [r[1] for r in rows]})
    path = tmp_path / f"data{suffix if suffix != 'dir' else ''}"
    if suffix == ".tsv":
        frame.to_csv(str(path), sep="\t", index=False)
    elif suffix == ".jsonl":
        frame.to_json(str(path))
    elif suffix == ".parquet":
        frame.to_parquet(str(path))
    else:
        datasets.DatasetDict({"train": frame}).save_to_disk(str(path))
    data = _prepare(load_raw(str(path), None, None))
    assert sum(data.sizes().values()) == 100
    texts = [text for split in ("train", "validation", "test") for text in data.splits[split]["text"]]
    assert sorted(texts) == sorted(r[0] for r in rows)


def test_tokenisation_is_cached_across_calls(tiny_model_dir, cache_dir):
    from transformers import AutoTokenizer

    from ftlab.data.tokenize import tokenize_splits

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = _prepare(_raw({"train": synthetic_rows(100)}))
    first = tokenize_splits(data.splits, tokenizer, 32, False)
    calls = []
    original = type(tokenizer).__call__
    type(tokenizer).__call__ = lambda self, *a, **k: calls.append(1) or original(self, *a, **k)
    try:
        second = tokenize_splits(data.splits, tokenizer, 32, False)
        assert calls == []  # nothing re-tokenised
        assert second["train"]["input_ids"] == first["train"]["input_ids"]
        tokenize_splits(data.splits, tokenizer, 16, False)  # another max length is another cache entry
        assert calls
        calls.clear()
        tokenize_splits(data.splits, tokenizer, 32, False, "tail")  # so is another truncation
        assert calls
    finally:
        type(tokenizer).__call__ = original
    assert len(list((cache_dir / "tokenized").glob("*.arrow"))) == 9


MIRROR_PROBE = """
import json, sys
from ftlab.data.sources import load_raw
from ftlab.data.splits import prepare_splits
raw = load_raw("imdb", None, None)
data = prepare_splits(raw, "imdb", validation_fraction=0.1, test_fraction=0.1, data_seed=42, max_train=2000,
                      max_eval=250, max_test=1000)
print(json.dumps({"origin": data.origin, "notes": data.notes, "sizes": data.sizes(),
                  "fingerprints": {k: v._fingerprint for k, v in data.splits.items()},
                  "first_test_text": data.splits["test"][0]["text"][:80]}))
"""


@pytest.mark.e2e
def test_imdb_mirror_is_identical_across_processes(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    runs = [json.loads(subprocess.run([sys.executable, "-c", MIRROR_PROBE], env=env, capture_output=True,
                                      text=True, check=True, cwd=tmp_path).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    assert runs[0] == runs[1]
    probe = runs[0]
    assert probe["origin"] == "mirror"
    assert probe["sizes"] == {"train": 2000, "validation": 250, "test": 1000}
    conversion = next(note for note in probe["notes"] if note.startswith("mirror conversion"))
    # The raw CSV holds 418 duplicate texts (counted when the mirror was added); one more pair becomes identical once <br /> tags are stripped.
    assert "rows_in 50,000" in conversion and "duplicates_dropped 419" in conversion
    assert "<br />" not in probe["first_test_text"]


def test_rows_without_labels_are_dropped_and_float_labels_are_classes():
    rows = [(t, 1.0 if label == "pos" else 0.0) for t, label in synthetic_rows(100)]
    validation = [(t, 1) for t, _ in synthetic_rows(12, seed=1)] + [("a film", None)]
    data = _prepare(_raw({"train": rows + [("a film", float("nan")), ("the plot", None)], "validation": validation}))
    assert data.label_names == ["0", "1"]  # 1.0 and 1 are one class
    assert data.sizes() == {"train": 90, "validation": 12, "test": 10}
    assert data.splits["validation"]["label"] == [1] * 12
    assert data.notes == ["dropped 2 rows without a label from the train split",
                          "dropped 1 rows without a label from the validation split",
                          "test carved from train (0.1, stratified, seed 42)"]
    with pytest.raises(DataError, match="^--dataset test-data: no row of the train split has a label$"):
        _prepare(_raw({"train": [("a film", None), ("the plot", None)]}))


def test_numeric_labels_are_numbered_from_0_in_order():
    rows = [(t, 3 if label == "pos" else 1) for t, label in synthetic_rows(100)]
    data = _prepare(_raw({"train": rows}))
    assert data.label_names == ["1", "3"]
    train = data.splits["train"]
    assert sorted(set(train["label"])) == [0, 1]
    assert [data.label_names[i] for i in train["label"]] == [str(dict(rows)[t]) for t in train["text"]]


def test_class_label_sources_keep_their_names_and_splits():
    rows = synthetic_rows(60)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})

    def split(part):
        return datasets.Dataset.from_dict({"text": [t for t, _ in part], "label": [l for _, l in part]}, features)

    raw = RawData(datasets.DatasetDict({"train": split(rows[:40]), "unsupervised": split(rows[40:45]),
                                        "validation": split(rows[40:50]), "test": split(rows[50:])}),
                  "hub", "text", "label")
    data = _prepare(raw)
    assert data.label_names == ["neg", "pos"]
    assert data.sizes() == {"train": 40, "validation": 10, "test": 10} and data.notes == []
    assert data.splits["test"]["text"] == [t for t, _ in rows[50:]]


def test_too_few_rows_to_carve_from_says_how_many_are_needed():
    """A split too small to score is an error: each carved split needs MIN_EVAL_ROWS (10) rows, so 10% of 95 rows
    is the least (a 6-row file would leave 1 validation and 1 test row, and an accuracy of 0 or 1)."""
    rows = synthetic_rows(95)
    assert _prepare(_raw({"train": rows})).sizes() == {"train": 75, "validation": 10, "test": 10}
    with pytest.raises(DataError, match=r"^--dataset test-data: 94 training rows are too few to carve validation "
                                        r"and test of at least 10 rows each from and keep 2 to train on: it needs "
                                        r"at least 95 rows$"):
        _prepare(_raw({"train": rows[:94]}))
    with pytest.raises(DataError, match=r"^--dataset test-data: 6 training rows are too few to carve validation "
                                        r"and test"):
        _prepare(_raw({"train": rows[:6]}))
    with pytest.raises(DataError, match=r"94 training rows are too few to carve test of at least 10 rows each from "
                                        r"and keep 2 to train on: it needs at least 95 rows$"):
        _prepare(_raw({"train": rows[:94], "validation": rows[:10]}))
    # A subsample below the minimum, or a split that came that small, says which.
    with pytest.raises(DataError, match=r"^--dataset test-data: the validation split has 5 rows; a split is scored "
                                        r"on at least 10$"):
        _prepare(_raw({"train": rows, "validation": rows[:5]}))
    with pytest.raises(DataError, match=r"^--dataset test-data: the test split has 3 rows; a split is scored on at "
                                        r"least 10$"):
        _prepare(_raw({"train": rows, "test": rows[:3]}))
    with pytest.raises(DataError, match=r"to carve validation and test of at least 10 rows each from .*: it needs "
                                        r"smaller "
                                        r"--validation_fraction/--test_fraction$"):
        _prepare(_raw({"train": synthetic_rows(20)}), validation_fraction=0.5, test_fraction=0.5)


def test_no_train_split_and_too_many_classes_fail():
    with pytest.raises(DataError, match=r"^--dataset test-data: no 'train' split \(splits: validation, test\)$"):
        _prepare(_raw({"validation": synthetic_rows(4), "test": synthetic_rows(4)}))
    with pytest.raises(DataError, match=r"^--dataset test-data: 22 distinct labels in 22 rows \(e.g. id0, id1, "
                                        r"id10\): column 'label' looks like an id, not classes; choose the class "
                                        r"column with --label_column \(or --problem_type regression for numbers to "
                                        r"predict\)$"):
        _prepare(_raw({"train": [(t, f"id{i}") for i, (t, _) in enumerate(synthetic_rows(22))]}), max_eval=None,
                 validation_fraction=0.45, test_fraction=0.45)
    # More than 20 classes is fine where each has two rows or more (at most half as many classes as rows).
    rows = [(t, i // 2) for i, (t, _) in enumerate(synthetic_rows(104))]
    assert _prepare(_raw({"train": rows})).num_labels == 52


def test_rare_classes_fall_back_to_a_seeded_shuffle_and_a_full_take_keeps_the_order():
    rows = synthetic_rows(119) + [("okay meh", "neutral")]  # one neutral row: too rare to stratify a subsample
    given = {"validation": synthetic_rows(12, seed=1), "test": synthetic_rows(12, seed=2)}
    first = _prepare(_raw({"train": rows, **given}), max_train=10)
    assert first.sizes()["train"] == 10
    again = _prepare(_raw({"train": rows, **given}), max_train=10)
    assert first.splits["train"]["text"] == again.splits["train"]["text"]
    whole = _prepare(_raw({"train": rows, **given})).splits["train"]["text"]
    assert whole == [t for t, _ in rows]
    assert _prepare(_raw({"train": rows, **given}), max_train=120).splits["train"]["text"] == whole
    # Carving falls back the same way: seeded, the sizes the fractions ask for.
    carved = [_prepare(_raw({"train": rows})) for _ in range(2)]
    assert carved[0].sizes() == {"train": 96, "validation": 12, "test": 12}
    assert carved[0].splits["test"]["text"] == carved[1].splits["test"]["text"]


def test_nested_subsamples_grow_by_adding_rows():
    rows = synthetic_rows(200)
    small, large = (_prepare(_raw({"train": rows}), max_train=n, train_subsample="nested") for n in (20, 60))
    assert set(small.splits["train"]["example_id"]) < set(large.splits["train"]["example_id"])
    assert list(small.splits["train"]["label"]).count(0) == 10
    # Nested rows stay in the split's own order (the training order then depends on the set only); the default
    # stratified subsample comes in the order its split drew them.
    full = _prepare(_raw({"train": rows})).splits["train"]["example_id"]
    position = {example_id: i for i, example_id in enumerate(full)}

    def in_split_order(ids) -> bool:
        return list(ids) == sorted(ids, key=position.get)

    assert in_split_order(small.splits["train"]["example_id"])
    assert not in_split_order(_prepare(_raw({"train": rows}), max_train=20).splits["train"]["example_id"])
