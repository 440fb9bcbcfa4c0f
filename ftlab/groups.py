"""Configuration groups: the runs that differ only in seed (and in fields that cannot change the model or its
metrics, marked identity=False in ftlab.config) are seeds of one configuration. Its id is the first 12 hex digits
of the SHA-256 of the rest of the resolved configuration as canonical JSON; records carry it as `group`, the
report aggregates by it and W&B groups runs by it. Light: no heavy imports.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from ftlab.config import FIELDS, IDENTITY_FIELDS, NO_LEGACY, Config, config_from_values, resolve_defaults

# Written next to a saved adapter: the group and seed of the run that trained it.
ADAPTER_PROVENANCE = "ftlab_run.json"


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
    --precision to (ftlab.speed.resolve_precision), which stands for it: `auto` means what the device has, and it
    meant fp32 on every CPU before bf16 CPUs got bf16, so `auto` alone would put both kinds of run in one group."""
    values = {name: getattr(getattr(cfg, FIELDS[name][0]), name) for name in sorted(IDENTITY_FIELDS)}
    if precision is not None:
        values["precision"] = precision
    if values["load_adapter"]:
        values["load_adapter"] = _adapter_identity(values["load_adapter"])
    canonical = json.dumps({"run_method": method, **values}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def config_from_record(sections: dict[str, Any]) -> Config:
    """A record's saved config (sections as `Config.to_dict` writes them) on top of today's defaults, the derived
    ones filled as a run fills them: records written before a field existed get its default, so their group is
    the one a run of the same settings gets today, or, where the new default changed what runs do (pooling,
    truncation, attention dropout), the field's `legacy` value, so that they do not join today's default runs.
    Keys this version does not know are ignored."""
    values = {}
    for section in sections.values():
        for key, value in (section or {}).items():
            if key in FIELDS:
                values[key] = None if value is None else FIELDS[key][1].metadata["parse"](value)
    for name, (_, f) in FIELDS.items():
        if name not in values and f.metadata["legacy"] is not NO_LEGACY:
            values[name] = f.metadata["legacy"]
    return resolve_defaults(config_from_values(values))
