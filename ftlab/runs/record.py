"""A run's record as its readers see it: result.json (one per run directory, RESULT_NAME) and the lines of an
experiment's index.jsonl hold the same JSON object, written by ftlab.training.record; RunRecord reads it.

The JSON keeps its keys, so that records written by every earlier version load: a field a record lacks reads as
that version's absence says (no top-level `method`/`model`: the config's; no `seed`: the config's; no `group`:
computed from the config as runs compute it now; no `predictions`: none). Every reader (report, comparisons,
plots, curve, bench, search, predict) goes through these accessors instead of string paths into the JSON.
Light: the standard library and ftlab.config only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

from ftlab import tasks
from ftlab.config import Config, config_from_record, group_id
from ftlab.errors import DataError

RESULT_NAME = "result.json"  # a finished run's record, in its directory


def has_record(directory: Any) -> bool:
    """Whether `directory` holds a finished run (its record)."""
    return (Path(directory) / RESULT_NAME).is_file()


def read_json_file(path: Path) -> Any:
    """A JSON file's content; a file cut short or damaged (a job killed while copying it, a disk that filled up) is
    one clear error naming it, not a JSONDecodeError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text, so not a record ftlab wrote") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): cut "
                        f"short or damaged; re-run that run, or move the file away") from None


@dataclass(eq=False)
class RunRecord:
    """One run's record. `data` is the JSON object as written; `found_in` is the directory the run's files are in
    now (a results directory may have been moved since the run wrote its `output_dir`)."""
    data: dict[str, Any]
    found_in: Optional[Path] = None

    @classmethod
    def load(cls, path: Path) -> "RunRecord":
        """The record in `path` (a result.json), found in its directory."""
        data = read_json_file(path)
        if not isinstance(data, dict) or "output_dir" not in data or "metrics" not in data:
            raise DataError(f"{path}: not a run record (no output_dir and metrics)")
        return cls(data, path.parent)

    # --- what the run was ---------------------------------------------------------------------------------
    @property
    def sections(self) -> dict[str, dict[str, Any]]:
        """The configuration as saved: {section: {option: value}} (model, data, method, optim, run, speed, ...)."""
        return self.data["config"]

    def option(self, section: str, name: str, default: Any = None) -> Any:
        """One saved option (`option("optim", "batch_size")`); `default` for a record written before it existed."""
        return self.sections.get(section, {}).get(name, default)

    @cached_property
    def config(self) -> Config:
        """The saved configuration on today's defaults (ftlab.config.config_from_record)."""
        return config_from_record(self.sections)

    @property
    def method(self) -> str:
        # Records written before the top-level "method"/"model" keys existed name them only in their config.
        return self.data.get("method") or self.sections["method"]["method"]

    @property
    def method_args(self) -> dict[str, Any]:
        """The saved method section (lora_r, lora_alpha, unfreeze_layers, load_adapter, ...)."""
        return self.sections["method"]

    @property
    def model(self) -> str:
        return self.data.get("model") or self.sections["model"]["model"]

    @property
    def model_location(self) -> str:
        """What the run loaded its model from (a directory or hub id)."""
        return self.data["model_source"]["location"]

    @property
    def dataset(self) -> str:
        return self.sections["data"]["dataset"]

    @property
    def seed(self) -> int:
        return self.data["seed"] if "seed" in self.data else self.config.run.seed

    @cached_property
    def group(self) -> str:
        return self.data.get("group") or group_id(self.config, self.method, self.data.get("precision"))

    @property
    def output_dir(self) -> str:
        """The directory the run wrote to, as it named it: the run's identity among records."""
        return self.data["output_dir"]

    @property
    def directory(self) -> Path:
        """Where the run's files are now."""
        return self.found_in or Path(self.output_dir)

    @property
    def eval_only(self) -> bool:
        return bool(self.data.get("eval_only"))

    @property
    def pooling(self) -> Optional[str]:
        """The pooling the run used (cls, mean, last); None for records from before pooling was recorded."""
        return (self.data.get("pooling") or {}).get("used")

    @property
    def truncation(self) -> Optional[str]:
        return self.data.get("truncation")

    @property
    def precision(self) -> Optional[str]:
        return self.data.get("precision")

    @property
    def sweep(self) -> Optional[dict[str, str]]:
        """For a run that is one point of a search or a curve: {"command": "search" or "curve", "dir": the
        directory the command wrote, as it named it}; None for a run of its own."""
        if self.data.get("sweep"):
            return self.data["sweep"]
        if self.search:  # a trial recorded before runs named their sweep: trials are <study_dir>/trial-<N>
            return {"command": "search", "dir": str(Path(self.output_dir).parent)}
        return None

    @property
    def sweep_directory(self) -> Optional[Path]:
        """Where the directory of this run's sweep is now (it may have moved with the run): the ancestor of
        `directory` as far up as the sweep's directory was above `output_dir`."""
        sweep = self.sweep
        if sweep is None:
            return None
        try:
            depth = len(Path(self.output_dir).relative_to(sweep["dir"]).parts)
        except ValueError:  # named by another path (relative vs absolute): the directory as named
            return Path(sweep["dir"])
        return self.directory.parents[depth - 1] if depth else self.directory

    @property
    def search(self) -> dict[str, Any]:
        """A search trial's `search` field (study, trial, state, params, ...); {} for other runs."""
        return self.data.get("search") or {}

    # --- its data -----------------------------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:
        return list(self.data.get("data", {}).get("label_names") or [])

    @property
    def data_origin(self) -> Optional[str]:
        return self.data.get("data", {}).get("origin")

    @property
    def test_is_validation(self) -> bool:
        return bool(self.data.get("data", {}).get("test_is_validation"))

    def split_size(self, split: str) -> int:
        return self.data["data"]["sizes"][split]

    # --- what it scored and cost --------------------------------------------------------------------------
    def metrics(self, split: str) -> dict[str, Any]:
        """accuracy, precision, recall, f1, loss, num_samples, confusion_matrix, samples_per_second of a split."""
        return self.data["metrics"][split]

    @property
    def task(self) -> tasks.Task:
        """What the run was (ftlab.tasks); a record from before tasks were recorded was single-label."""
        return tasks.of_record(self.data)

    def score(self, split: str = "test") -> float:
        """The task's primary metric on `split` (accuracy, example-based F1 or MSE)."""
        return self.metrics(split)[self.task.primary]

    def secondary(self, split: str = "test") -> float:
        return self.metrics(split).get(self.task.secondary, float("nan"))

    def accuracy(self, split: str = "test") -> float:
        return self.metrics(split)["accuracy"]

    def f1(self, split: str = "test") -> float:
        return self.metrics(split)["f1"]

    @property
    def splits(self) -> list[str]:
        return list(self.data["metrics"])

    def prediction_file(self, split: str) -> Optional[Path]:
        """The run's per-example predictions of `split`, where the record names them and they still exist."""
        relative = (self.data.get("predictions") or {}).get(split)
        if relative is None:
            return None
        path = self.directory / relative
        return path if path.is_file() else None

    @property
    def collapse(self) -> Optional[str]:
        return self.data.get("collapse")

    @property
    def trainable_params(self) -> int:
        return self.data["trainable_params"]

    @property
    def total_params(self) -> int:
        return self.data["total_params"]

    @property
    def trainable_percent(self) -> float:
        return self.data["trainable_percent"]

    @property
    def train_seconds(self) -> float:
        return self.data["train_seconds"]

    @property
    def train_samples_per_second(self) -> Optional[float]:
        return self.data.get("train_samples_per_second")

    @property
    def train_tokens_per_second(self) -> Optional[float]:
        return self.data.get("train_tokens_per_second")

    @property
    def steady_samples_per_second(self) -> Optional[float]:
        return self.data.get("steady_samples_per_second")

    @property
    def steady_step_seconds(self) -> Optional[float]:
        return self.data.get("steady_step_seconds")

    @property
    def mean_train_tokens(self) -> Optional[float]:
        return self.data.get("mean_train_tokens")

    @property
    def peak_memory_mb(self) -> Optional[float]:
        return self.data.get("peak_memory_mb")

    @property
    def loss_history(self) -> list[dict[str, float]]:
        return self.data.get("loss_history") or []

    @property
    def device(self) -> str:
        return self.data["environment"]["device"]

    @property
    def saved(self) -> dict[str, str]:
        """What the run saved besides its record: "model" (what predict loads), "adapter", "merged"."""
        return self.data.get("saved") or {}
