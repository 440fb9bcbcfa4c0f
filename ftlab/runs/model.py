"""Which directory holds the model of a run, seed or checkpoint directory (what `predict --model_dir` is given),
and the run's record that tells what a checkpoint's own config may not (its labels, pooling and truncation). Light:
decided from the files alone, before anything loads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ftlab.errors import ModelSourceError
from ftlab.models.inference import ADAPTER_CONFIG, MODEL_CONFIG, MODEL_DIR, holds_model
from ftlab.models.onnx import ONNX_FILE, exported_graph
from ftlab.runs.directory import CONFIG_NAME
from ftlab.runs.record import RESULT_NAME, RunRecord, has_record
from ftlab.runs.resume import latest_checkpoint


@dataclass
class SavedModel:
    directory: Path  # a plain model or adapter directory
    record: Optional[RunRecord]  # the finished run it belongs to; None for a model from elsewhere or an unfinished run
    note: str = ""  # what was chosen, where the directory given was not itself a model


def rebased(record: RunRecord, saved: str) -> Path:
    """A path the run saved, where it is now: under the run's directory if it was under its output_dir then."""
    try:
        return record.directory / Path(saved).relative_to(record.output_dir)
    except ValueError:
        return Path(saved)


def _is_run(directory: Path) -> bool:
    return has_record(directory) or (directory / CONFIG_NAME).is_file()


def _saved_by(directory: Path) -> Optional[RunRecord]:
    """The record of the run that saved the model in `directory`: a checkpoint of it, or its model/, merged/ or
    adapter directory beside its record."""
    parent = directory.parent
    if not has_record(parent):
        return None
    record = RunRecord.load(parent / RESULT_NAME)
    if directory.name.startswith("checkpoint-") or any(rebased(record, saved).resolve() == directory.resolve()
                                                        for saved in record.saved.values()):
        return record
    return None


def locate_model(model_dir: str, flag: str = "--model_dir") -> SavedModel:
    """The model a directory stands for: a finished run's model (its model/, or what --merge or --save_adapter
    wrote, or a checkpoint it kept), an interrupted run's newest checkpoint, or the directory itself when it holds a
    model (a checkpoint of a run comes with that run's record). A directory of several seeds' runs, or of none, is
    refused with one line. `flag`: how the command's user named the directory."""
    path = Path(model_dir)
    if not path.is_dir():
        found = "a file, not a directory" if path.exists() else "no such directory"
        raise ModelSourceError(f"{flag} {model_dir}: {found}")
    if has_record(path):
        record = RunRecord.load(path / RESULT_NAME)
        for key in ("model", "merged", "adapter"):
            if key in record.saved and holds_model(rebased(record, record.saved[key])):
                return SavedModel(rebased(record, record.saved[key]), record)
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise ModelSourceError(f"{flag} {model_dir}: the run kept no model (no {MODEL_DIR}/, merged/ or "
                                   f"checkpoint-*/; its record is all that is left): train it again to predict")
        return SavedModel(Path(checkpoint), record, f"{model_dir} keeps no {MODEL_DIR}/ (a run of an earlier "
                                                    f"version): using its checkpoint {Path(checkpoint).name}")
    if holds_model(path):
        return SavedModel(path, _saved_by(path))
    seeds = sorted(child.name for child in path.glob("seed*") if child.is_dir() and _is_run(child))
    if len(seeds) == 1:  # a --seeds run of one seed: the run is that seed's
        found = locate_model(str(path / seeds[0]), flag)
        return SavedModel(found.directory, found.record, found.note or f"{model_dir}: the run of {seeds[0]}")
    if seeds:
        raise ModelSourceError(f"{flag} {model_dir} holds the runs of {len(seeds)} seeds ({', '.join(seeds)}): "
                               f"give one of them, e.g. {flag} {path / seeds[0]}")
    if (path / CONFIG_NAME).is_file():
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise ModelSourceError(f"{flag} {model_dir}: an unfinished run without a complete checkpoint; "
                                   f"nothing to predict with yet")
        return SavedModel(Path(checkpoint), None, f"{model_dir} is an unfinished run: using its newest checkpoint "
                                                  f"{Path(checkpoint).name}")
    raise ModelSourceError(f"{flag} {model_dir} holds neither {MODEL_CONFIG} (a saved model) nor "
                           f"{ADAPTER_CONFIG} (a saved LoRA adapter), nor a run ({RESULT_NAME})")


EXPORT_DIR = "onnx"  # in a run's directory: where `export` writes unless told otherwise


def locate_export(model_dir: str) -> Path:
    """The graph an export directory deploys (ftlab.models.onnx.exported_graph), given the export directory or a
    run (or seed) directory that holds one in onnx/. One line where there is none."""
    path = Path(model_dir)
    for directory in (path, path / EXPORT_DIR):
        if (directory / ONNX_FILE).is_file():
            graph = exported_graph(directory)
            if not graph.is_file():
                raise ModelSourceError(f"--model_dir {model_dir}: {graph.name}, the graph its export names, is missing")
            return graph
    found = "no such directory" if not path.exists() else f"no {ONNX_FILE} in it or in its {EXPORT_DIR}/"
    raise ModelSourceError(f"--model_dir {model_dir}: {found}; --backend onnx reads what `main.py export` wrote "
                           f"(export the run first: main.py export {model_dir} --format onnx)")
