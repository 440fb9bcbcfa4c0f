"""Run records as the report and the plots read them: found under a results directory, named, and put together
into configuration groups (the seeds of one configuration).

Records come from each experiment's `index.jsonl` (one line per finished run) and from `result.json` files that
no index lists (runs copied in by hand). A run that appears twice (re-run with --overwrite_output_dir) counts
once, with its latest record: runs are identified by their `output_dir`. Records written before a field existed
are read as that field's absence says: no `method`/`model` (taken from the config), no `seed` (the config's),
no `group` (computed from the config, as runs compute it now), no `predictions`.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ftlab.config import config_from_record, group_id
from ftlab.runs.directory import INDEX_NAME, run_name

Record = dict[str, Any]
FOUND_IN = "found_in"  # added on loading: the directory the run's files are in now (it may have moved)


def load_records(results_dir: Path) -> list[Record]:
    """The latest record of every run under results_dir, in the table's order."""
    by_run: dict[str, Record] = {}
    for index in sorted(results_dir.rglob(INDEX_NAME)):
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # A line cut short by a killed job must not hide the rest of the sweep.
                print(f"[ftlab] report: skipping unreadable line {number} of {index}", file=sys.stderr)
                continue
            # The index lives in the runs' parent directory, wherever that has been moved to since.
            moved = index.parent / Path(record["output_dir"]).name
            record[FOUND_IN] = str(moved if moved.is_dir() else record["output_dir"])
            by_run[record["output_dir"]] = record
    for path in sorted(results_dir.rglob("result.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        record[FOUND_IN] = str(path.parent)
        by_run.setdefault(record["output_dir"], record)
    return sorted(by_run.values(), key=sort_key)


def method_of(record: Record) -> str:
    # Records written before the top-level "method"/"model" keys existed name them only in their config.
    return record.get("method") or record["config"]["method"]["method"]


def model_of(record: Record) -> str:
    return record.get("model") or record["config"]["model"]["model"]


def dataset_of(record: Record) -> str:
    return record["config"]["data"]["dataset"]


def seed_of(record: Record) -> int:
    return record["seed"] if "seed" in record else config_from_record(record["config"]).run.seed


def group_of(record: Record) -> str:
    return record.get("group") or group_id(config_from_record(record["config"]), method_of(record),
                                           record.get("precision"))


def sort_key(record: Record) -> tuple[str, str, str, str]:
    return dataset_of(record), model_of(record), method_of(record), record["output_dir"]


def prediction_file(record: Record, split: str) -> Optional[Path]:
    """The run's per-example predictions of `split`, where the record names them and they still exist."""
    relative = (record.get("predictions") or {}).get(split)
    if relative is None:
        return None
    path = Path(record.get(FOUND_IN, record["output_dir"])) / relative
    return path if path.is_file() else None


def run_labels(records: list[Record]) -> dict[str, str]:
    """output_dir -> the run's short name (run_name), with the parent's directory where two runs share one."""
    names = [run_name(r["output_dir"]) for r in records]
    return {r["output_dir"]: name if names.count(name) == 1 else f"{Path(r['output_dir']).parent.name}/{name}"
            for r, name in zip(records, names)}


@dataclass
class Group:
    """The runs of one configuration: they differ only in seed (and fields that cannot change the model)."""
    id: str
    name: str
    records: list[Record]


def _common_directory(records: list[Record]) -> Optional[Path]:
    try:
        common = Path(os.path.commonpath([r["output_dir"] for r in records]))
    except ValueError:  # absolute and relative paths mixed
        return None
    return common if common.name else None


def _is_under(path: str, directory: Path) -> bool:
    return Path(path) == directory or directory in Path(path).parents


def group_records(records: list[Record]) -> list[Group]:
    """Records grouped by configuration, in the order of their first run. A group's name is its run's name when
    it has one run, else the directory its runs share (lora for lora/seed1..3) when no other group's run is in
    it, else its id; names that clash get the id appended."""
    labels = run_labels(records)
    members: dict[str, list[Record]] = {}
    for record in records:
        members.setdefault(group_of(record), []).append(record)
    names = {}
    for gid, runs in members.items():
        if len(runs) == 1:
            names[gid] = labels[runs[0]["output_dir"]]
            continue
        common = _common_directory(runs)
        foreign = [r for other, rs in members.items() if other != gid for r in rs]
        names[gid] = common.name if common and not any(_is_under(r["output_dir"], common) for r in foreign) else gid
    clashing = {name for name in names.values() if list(names.values()).count(name) > 1}
    return [Group(gid, f"{names[gid]} ({gid})" if names[gid] in clashing else names[gid], runs)
            for gid, runs in members.items()]
