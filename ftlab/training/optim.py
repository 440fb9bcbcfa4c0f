"""Optimizer and learning-rate schedule: the Trainer's own where it has them, torch's where it does not."""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from ftlab.config import OptimArgs

# --optimizer -> the Trainer's `optim` name, for the ones the Trainer builds itself.
TRAINER_OPTIMIZERS = {"adamw": "adamw_torch_fused", "adamw_8bit": "adamw_bnb_8bit",
                      "paged_adamw_8bit": "paged_adamw_8bit"}
# --scheduler values the Trainer's get_scheduler knows under the same name.
TRAINER_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")

SchedulerFactory = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


def optimizer_choice(args: OptimArgs) -> tuple[str, Optional[tuple[type, dict[str, Any]]]]:
    """(Trainer optim name, None), or a (class, kwargs) pair for the Trainer's optimizer_cls_and_kwargs.

    Plain Adam and SGD go through torch directly: the Trainer has no Adam with coupled (L2) weight decay, and its
    SGD takes momentum only as a free-form optim_args string. The Trainer still builds the parameter groups
    (no weight decay on biases and LayerNorms) for both.
    """
    if args.optimizer in TRAINER_OPTIMIZERS:
        return TRAINER_OPTIMIZERS[args.optimizer], None
    if args.optimizer == "adam":
        return "adamw_torch", (torch.optim.Adam, {"lr": args.lr})
    return "sgd", (torch.optim.SGD, {"lr": args.lr, "momentum": args.momentum,
                                     "nesterov": args.optimizer == "sgd_nesterov"})


def scheduler_factory(args: OptimArgs) -> Optional[SchedulerFactory]:
    """None for the Trainer's own schedules; otherwise a builder that the Trainer calls with its real number of
    optimizer steps (gradient accumulation and world size included), which OneCycleLR needs exactly."""
    if args.scheduler in TRAINER_SCHEDULERS:
        return None
    if args.scheduler == "linearlr":
        return lambda optimizer, steps: torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0, end_factor=0.0, total_iters=steps)

    def one_cycle(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        # Without cycle_momentum=False, OneCycleLR silently rewrites SGD's momentum (and Adam's beta1) every step.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[group["lr"] for group in optimizer.param_groups], total_steps=steps,
            pct_start=args.warmup_ratio or 0.3, cycle_momentum=args.cycle_momentum)

    return one_cycle
