"""Where a dataset comes from: a local path, the hub (live or cached), or an offline package-index mirror."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import datasets

from ftlab.data.registry import LOCAL_SUFFIXES, REGISTRY, DatasetSpec
from ftlab.data.textfile import check_text_file, delimiter_hint, header_columns
from ftlab.errors import DataError
from ftlab.hub import hub_online


@dataclass
class RawData:
    splits: datasets.DatasetDict
    origin: str  # "local" | "hub" | "mirror"
    text_column: str
    label_column: str
    notes: list[str] = field(default_factory=list)


def _json_error(path: Path) -> Optional[str]:
    """Where a JSON or JSON Lines file breaks, for the error message (the json builder only says that it failed);
    None when it parses, and the reader failed for another reason."""
    import json

    with open(path, encoding="utf-8") as handle:
        if path.suffix.lower() == ".json":
            try:
                json.load(handle)
            except ValueError as exc:
                return f"not valid JSON ({exc})"
            return None
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError as exc:
                    return f"line {number} is not valid JSON ({exc})"
    return None


def _load_local(path: Path) -> datasets.DatasetDict:
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:  # missing metadata, or datasets failing on e.g. an empty split: unreadable as given
            raise DataError(f"--dataset {path}: cannot read it as a save_to_disk directory: "
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    suffix = path.suffix.lower()
    if suffix != ".parquet":
        check_text_file(path)
    builder = LOCAL_SUFFIXES[suffix]
    # utf-8-sig: a byte-order mark (Excel writes one) would otherwise become part of the first column's name.
    kwargs = {"csv": {"encoding": "utf-8-sig"}}.get(builder, {})
    if suffix == ".tsv":
        kwargs["delimiter"] = "\t"
    try:
        return datasets.load_dataset(builder, data_files={"train": str(path)}, **kwargs)
    except Exception as exc:  # the builders raise many types for a malformed file; all mean "cannot read it"
        # datasets wraps the reader's error ("An error occurred while generating the dataset"): pandas' says where.
        cause = exc.__cause__ or exc.__context__ or exc
        detail = (_json_error(path) if builder == "json" else None) or str(cause).strip() or str(exc).strip()
        hint = delimiter_hint(header_columns(path, kwargs.get("delimiter", ","))) if builder == "csv" else ""
        raise DataError(f"--dataset {path}: cannot read it as {path.suffix}: {detail.splitlines()[0]}{hint}") \
            from None


def _load_hub(hub_id: str, config: Optional[str]) -> Optional[datasets.DatasetDict]:
    """The real hub path. Offline (HF_HUB_OFFLINE set by ftlab.hub) this reads the local hub cache or fails fast."""
    try:
        return datasets.load_dataset(hub_id, config)
    except Exception:  # not on the hub, not cached, or no network: the caller decides what comes next
        if hub_online():
            raise
        return None


def load_raw(name: str, text_column: Optional[str], label_column: Optional[str]) -> RawData:
    path = Path(name).expanduser()
    if name not in REGISTRY and path.exists():
        return RawData(_load_local(path), "local", text_column or "text", label_column or "label")
    spec: Optional[DatasetSpec] = REGISTRY.get(name)
    hub_id, hub_config = (spec.hub_id, spec.hub_config) if spec else (name, None)
    text = text_column or (spec.text_column if spec else "text")
    label = label_column or (spec.label_column if spec else "label")
    hub = _load_hub(hub_id, hub_config)
    if hub is not None:
        return RawData(hub, "hub", text, label)
    if spec is not None and spec.mirror is not None:
        from ftlab.data.mirrors import load_mirror

        # The mirrors are already normalised to text/label, whatever the hub's column names are.
        splits, provenance = load_mirror(spec.mirror)
        counts = ", ".join(f"{key} {value:,}" for key, value in provenance.items())
        return RawData(splits, "mirror", text_column or "text", label_column or "label",
                       notes=[spec.mirror_note, f"mirror conversion: {counts}"])
    hint = spec.missing_hint if spec and spec.missing_hint else (
        "download it where the hub is reachable (datasets.load_dataset(...).save_to_disk(DIR)) and pass --dataset DIR")
    raise DataError(f"--dataset {name}: the hub is unreachable and it is not in the local hub cache. {hint}")
