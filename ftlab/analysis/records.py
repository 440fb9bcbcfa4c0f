"""Run records as the report and the plots read them: found under a results directory, named, and put together
into configuration groups (the seeds of one configuration).

RunRecords come from each experiment's `index.jsonl` (one line per finished run) and from `result.json` files that
no index lists (runs copied in by hand). A run that appears twice (re-run with --overwrite_output_dir) counts
once, with its latest record: runs are identified by their `output_dir`. Each is a RunRecord
(ftlab.runs.record), which reads records of every earlier version too.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab.errors import DataError
from ftlab.runs.directory import INDEX_NAME, run_name
from ftlab.runs.record import RESULT_NAME, RunRecord


def load_records(results_dir: Path) -> list[RunRecord]:
    """The latest record of every run under results_dir, in the table's order."""
    by_run: dict[str, RunRecord] = {}
    for index in sorted(results_dir.rglob(INDEX_NAME)):
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                # A line cut short by a killed job must not hide the rest of the sweep.
                print(f"[ftlab] report: skipping unreadable line {number} of {index}", file=sys.stderr)
                continue
            # The index lives in the runs' parent directory, wherever that has been moved to since.
            moved = index.parent / Path(data["output_dir"]).name
            record = RunRecord(data, moved if moved.is_dir() else Path(data["output_dir"]))
            by_run[record.output_dir] = record
    for path in sorted(results_dir.rglob(RESULT_NAME)):
        try:
            record = RunRecord.load(path)
        except DataError as exc:  # cut short (a job killed while copying it): the other runs still count
            print(f"[ftlab] report: skipping {exc}", file=sys.stderr)
            continue
        by_run.setdefault(record.output_dir, record)
    return sorted(by_run.values(), key=sort_key)


def leave_out_sweeps(records: list[RunRecord], results_dir: Path) -> tuple[list[RunRecord], list[str]]:
    """The records a report of `results_dir` stands for, and what it left out, in words: the points of a search or
    a curve whose directory lies inside results_dir (not results_dir itself, nor around it) are that command's
    analysis, not configurations to rank against the others (a curve's smallest size would be one group, and
    could become the reference). `report <the sweep's directory>` reads them."""
    inside = results_dir.resolve()
    kept: list[RunRecord] = []
    left: dict[tuple[str, Path], int] = {}
    for record in records:
        sweep = record.sweep_directory
        if sweep is None or inside == sweep.resolve() or sweep.resolve() in inside.parents:
            kept.append(record)
        else:
            key = (record.sweep["command"], sweep)
            left[key] = left.get(key, 0) + 1
    return kept, [f"{count} runs of the {command} in {directory} (report that directory to see them)"
                  for (command, directory), count in left.items()]


def sort_key(record: RunRecord) -> tuple[str, str, str, str]:
    return record.dataset, record.model, record.method, record.output_dir


def run_labels(records: list[RunRecord]) -> dict[str, str]:
    """output_dir -> the run's short name (run_name), with the parent's directory where two runs share one."""
    names = [run_name(r.output_dir) for r in records]
    return {r.output_dir: name if names.count(name) == 1 else f"{Path(r.output_dir).parent.name}/{name}"
            for r, name in zip(records, names)}


@dataclass
class Group:
    """The runs of one configuration: they differ only in seed (and fields that cannot change the model)."""
    id: str
    name: str
    records: list[RunRecord]


def _common_directory(records: list[RunRecord]) -> Optional[Path]:
    try:
        common = Path(os.path.commonpath([r.output_dir for r in records]))
    except ValueError:  # absolute and relative paths mixed
        return None
    return common if common.name else None


def _is_under(path: str, directory: Path) -> bool:
    return Path(path) == directory or directory in Path(path).parents


def group_records(records: list[RunRecord]) -> list[Group]:
    """RunRecords grouped by configuration, in the order of their first run. A group's name is its run's name when
    it has one run, else the directory its runs share (lora for lora/seed1..3) when no other group's run is in
    it, else its id; names that clash get the id appended."""
    labels = run_labels(records)
    members: dict[str, list[RunRecord]] = {}
    for record in records:
        members.setdefault(record.group, []).append(record)
    names = {}
    for gid, runs in members.items():
        if len(runs) == 1:
            names[gid] = labels[runs[0].output_dir]
            continue
        common = _common_directory(runs)
        foreign = [r for other, rs in members.items() if other != gid for r in rs]
        names[gid] = common.name if common and not any(_is_under(r.output_dir, common) for r in foreign) else gid
    clashing = {name for name in names.values() if list(names.values()).count(name) > 1}
    return [Group(gid, f"{names[gid]} ({gid})" if names[gid] in clashing else names[gid], runs)
            for gid, runs in members.items()]
