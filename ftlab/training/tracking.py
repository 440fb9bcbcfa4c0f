"""Weights & Biases tracking that can fail without taking the run down.

The Trainer's own WandbCallback does the per-step logging; this module decides the mode (online falls back to
offline when there is no key or no network), opens the run on the main process only, and guards every callback
so a tracking error costs the tracking, never the training or its record.
"""
from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from transformers.integrations import WandbCallback

from ftlab.config import Config
from ftlab.hub import reachable
from ftlab.runs.directory import run_name


def _notice(message: str) -> None:
    print(f"[ftlab] W&B: {message}", file=sys.stderr, flush=True)


def _has_api_key(host: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def effective_mode(requested: str) -> str:
    """online, unless there is no key or no route to the server: then offline, said once."""
    if requested != "online":
        return requested
    base_url = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    host = urlparse(base_url).hostname or "api.wandb.ai"
    if not _has_api_key(host):
        _notice("no API key (WANDB_API_KEY or `wandb login`); logging offline instead, `wandb sync` it later")
        return "offline"
    if not reachable(base_url):
        _notice(f"{host} is unreachable; logging offline instead, `wandb sync` it later")
        return "offline"
    return "online"


def default_group(cfg: Config, group: str) -> str:
    """The W&B group of the runs of one configuration group (its seeds): <method>-<group id>, the same however
    the seeds were started (--seeds, a suite, by hand), so W&B aggregates what the report aggregates."""
    return f"{cfg.method.method}-{group}"


def start_run(cfg: Config, output_dir: Path, group: str) -> Optional[Any]:
    """Open the W&B run for this training run (main process only); None when tracking is off or cannot start.
    `group` is the run's configuration group (ftlab.config.groups)."""
    from ftlab.distributed import process_state

    if cfg.tracking.wandb_mode == "disabled" or not process_state().is_main_process:
        return None
    mode = effective_mode(cfg.tracking.wandb_mode)
    try:
        import wandb

        return wandb.init(project=cfg.tracking.wandb_project,
                          group=cfg.tracking.wandb_group or default_group(cfg, group),
                          name=cfg.tracking.run_name or run_name(str(output_dir)), mode=mode, dir=str(output_dir),
                          config={**cfg.to_dict(), "group": group}, reinit="finish_previous")
    except Exception as exc:  # noqa: BLE001 - any tracking failure must leave the run going
        _notice(f"could not start a {mode} run ({type(exc).__name__}: {exc}); training goes on without tracking")
        return None


def finish_run(run: Optional[Any], record: dict[str, Any]) -> Optional[dict[str, str]]:
    """Put the record's headline figures in the run summary, close it, and say where it lives."""
    if run is None:
        return None
    try:
        summary = {f"{split}/{key}": value for split, metrics in record["metrics"].items()
                   for key, value in metrics.items() if isinstance(value, (int, float))}
        summary.update({key: record[key] for key in ("trainable_params", "total_params", "train_seconds",
                                                     "train_samples_per_second", "train_tokens_per_second",
                                                     "peak_memory_mb")})
        summary["collapse"] = record.get("collapse") or ""
        run.summary.update(summary)
        where = {"mode": run.settings.mode, "project": run.project, "group": run.group, "id": run.id,
                 "dir": str(Path(run.dir).parent)}
        run.finish()
        return where
    except Exception as exc:  # noqa: BLE001
        _notice(f"could not finish the run ({type(exc).__name__}: {exc}); the local record is unaffected")
        return None


class FailSafeWandbCallback(WandbCallback):
    """The Trainer's W&B callback; the first error it raises switches tracking off with one notice."""

    def _guard(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if self._wandb is None:
            return None
        try:
            return getattr(super(), event)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            _notice(f"tracking stopped after an error in {event} ({type(exc).__name__}: {exc}); training goes on")
            self._wandb = None  # the base class treats None as "W&B not available" in every event
            return None

    def on_train_begin(self, *args: Any, **kwargs: Any) -> Any:
        return self._guard("on_train_begin", *args, **kwargs)

    def on_train_end(self, *args: Any, **kwargs: Any) -> Any:
        return self._guard("on_train_end", *args, **kwargs)

    def on_log(self, *args: Any, **kwargs: Any) -> Any:
        return self._guard("on_log", *args, **kwargs)

    def on_save(self, *args: Any, **kwargs: Any) -> Any:
        return self._guard("on_save", *args, **kwargs)

    def on_predict(self, *args: Any, **kwargs: Any) -> Any:
        return self._guard("on_predict", *args, **kwargs)
