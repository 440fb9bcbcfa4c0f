"""Configuration groups: the runs that differ only in seed (and in fields that cannot change the model or its
metrics, marked identity=False in ftlab.config) are seeds of one configuration. Its id is the first 12 hex digits
of the SHA-256 of the rest of the resolved configuration as canonical JSON; records carry it as `group`, the
report aggregates by it and W&B groups runs by it. Light: no heavy imports.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ftlab.config.schema import FIELDS, IDENTITY_FIELDS, Config

# Written next to a saved adapter: the group and seed of the run that trained it.
ADAPTER_PROVENANCE = "ftlab_run.json"
# Identity fields added after ids were given out, with the value every earlier run had: at that value a field is
# left out of the id, so runs that do not use it keep the id of the runs recorded before it existed.
ADDED_LATER = {"train_subsample": "stratified", "dataset_config": None, "text_pair_column": None,
               "problem_type": None, "label_separator": None, "label_scaling": False, "class_weights": "none",
               "threshold": None, "lora_init": "kaiming", "loraplus_lr_ratio": None, "num_virtual_tokens": 20,
               "peft_args": None}
# Fields whose default changed to a value that means what the old default meant for every run the old one could
# describe: the id carries the old value, so those runs keep their group. --metric_for_best's default became "the
# task's primary metric", which is accuracy for the single-label runs that were all there was.
SAME_AS_BEFORE = {"metric_for_best": (None, "accuracy")}


def _adapter_identity(path: str) -> str:
    """An adapter stands for the configuration that trained it, not for its path: the chain "LoRA, then the head"
    over seeds loads a different adapter directory per seed, and its runs must still form one group."""
    provenance = Path(path) / ADAPTER_PROVENANCE
    if provenance.is_file():
        try:
            return "group:" + json.loads(provenance.read_text(encoding="utf-8"))["group"]
        except (ValueError, KeyError, TypeError):
            pass  # unreadable: the path identifies it, as for adapters from elsewhere
    return path


def group_id(cfg: Config, method: str, precision: Optional[str] = None) -> str:
    """The configuration's id. `method` is the record's method, which differs from cfg.method.method for the
    baseline (tfidf_svm, whose config keeps the fine-tuning defaults). `precision`: the one the run resolved
    --precision to (ftlab.training.speed.resolve_precision), which stands for it: `auto` means what the device
    has, and it meant fp32 on every CPU before bf16 CPUs got bf16, so `auto` alone would put both kinds of run in
    one group."""
    values = {name: getattr(getattr(cfg, FIELDS[name][0]), name) for name in sorted(IDENTITY_FIELDS)}
    for name, before in ADDED_LATER.items():
        if values[name] == before:
            del values[name]
    for name, (now, before) in SAME_AS_BEFORE.items():
        if values[name] == now:
            values[name] = before
    if precision is not None:
        values["precision"] = precision
    if values["load_adapter"]:
        values["load_adapter"] = _adapter_identity(values["load_adapter"])
    canonical = json.dumps({"run_method": method, **values}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
