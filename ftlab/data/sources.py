"""Where a dataset comes from: a local path, the hub (live or cached), or an offline package-index mirror."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

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
    label_column: str  # one column, or several comma-separated (multi-hot: one 0/1 column per label)
    notes: list[str] = field(default_factory=list)
    text_pair_column: Optional[str] = None
    # The features were chosen by whoever built the dataset (the hub, a mirror, a save_to_disk directory), not
    # guessed by a file reader: a float label feature is then a regression even where its values are whole.
    typed: bool = False

    @property
    def label_columns(self) -> list[str]:
        return [column.strip() for column in self.label_column.split(",") if column.strip()]


def _json_error(path: Path) -> Optional[str]:
    """Where a JSON or JSON Lines file breaks, for the error message (the json builder only says that it failed);
    None when it parses, and the reader failed for another reason."""
    import json

    with open(path, encoding="utf-8") as handle:
        if path.suffix.lower() == ".json":
            try:
                rows = json.load(handle)
            except ValueError as exc:
                return f"not valid JSON ({exc})"
            return _mixed_column(enumerate(rows if isinstance(rows, list) else [], start=1), "item")
        rows = []
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except ValueError as exc:
                    return f"line {number} is not valid JSON ({exc})"
    return _mixed_column(rows, "line")


def _mixed_column(rows: Any, unit: str) -> Optional[str]:
    """A column whose values are lists in some rows and single values in others (a label column of mixed forms):
    the reader's error ("cannot mix list and non-list") names neither the column nor the rows."""
    first: dict[str, dict[bool, tuple[int, Any]]] = {}
    for number, row in rows:
        for key, value in (row.items() if isinstance(row, dict) else ()):
            if value is not None:
                first.setdefault(key, {}).setdefault(isinstance(value, list), (number, value))
    for key, forms in first.items():
        if len(forms) == 2:
            (list_at, list_value), (one_at, one_value) = forms[True], forms[False]
            return (f"column {key!r} mixes forms: {unit} {list_at} is a list ({list_value!r}), {unit} {one_at} is "
                    f"not ({one_value!r}); give every row the same form")
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
    except ValueError as exc:  # e.g. "Config name is missing": the user's to fix, said as datasets says it
        if "config" in str(exc).lower() and hub_online():
            raise DataError(f"--dataset {hub_id}: {str(exc).splitlines()[0]} (choose with --dataset_config)") from None
        if hub_online():
            raise
        return None
    except Exception:  # not on the hub, not cached, or no network: the caller decides what comes next
        if hub_online():
            raise
        return None


def load_raw(name: str, text_column: Optional[str], label_column: Optional[str],
             text_pair_column: Optional[str] = None, dataset_config: Optional[str] = None) -> RawData:
    path = Path(name).expanduser()
    if name not in REGISTRY and path.exists():
        return RawData(_load_local(path), "local", text_column or "text", label_column or "label",
                       text_pair_column=text_pair_column, typed=path.is_dir())
    spec: Optional[DatasetSpec] = REGISTRY.get(name)
    hub_id, hub_config = (spec.hub_id, spec.hub_config) if spec else (name, None)
    hub_config = dataset_config or hub_config
    text = text_column or (spec.text_column if spec else "text")
    label = label_column or (spec.label_column if spec else "label")
    pair = text_pair_column or (spec.text_pair_column if spec else None)
    hub = _load_hub(hub_id, hub_config) if hub_id else None
    if hub is not None:
        return RawData(hub, "hub", text, label, text_pair_column=pair, typed=True)
    if spec is not None and spec.mirror is not None:
        from ftlab.data.mirrors import load_mirror

        # The mirrors are already normalised to text/label (text_pair), whatever the hub's column names are.
        splits, provenance = load_mirror(spec.mirror)
        counts = ", ".join(f"{key} {value:,}" for key, value in provenance.items())
        return RawData(splits, "mirror", text_column or "text", label_column or "label",
                       notes=[spec.mirror_note, f"mirror conversion: {counts}"],
                       text_pair_column=text_pair_column or ("text_pair" if spec.text_pair_column else None),
                       typed=True)
    hint = spec.missing_hint if spec and spec.missing_hint else (
        "download it where the hub is reachable (datasets.load_dataset(...).save_to_disk(DIR)) and pass --dataset DIR")
    raise DataError(f"--dataset {name}: the hub is unreachable and it is not in the local hub cache. {hint}")
