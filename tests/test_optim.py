"""Every optimizer x scheduler trains a few steps through the harness's own Trainer on a tiny model."""
import math

import bitsandbytes as bnb
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback

from ftlab.config import OPTIMIZERS, SCHEDULERS
from ftlab.runs.plan import plan_run
from ftlab.data.splits import prepare_splits
from ftlab.data.tokenize import tokenize_splits
from ftlab.training.trainer import build_trainer
from tests.test_data import _raw
from tests.conftest import synthetic_rows

# 8-bit ones: the Trainer builds bnb.optim.AdamW(optim_bits=8, is_paged=...), so check those settings.
EXPECTED_OPTIMIZER = {"adamw": (torch.optim.AdamW, None), "adam": (torch.optim.Adam, None),
                      "sgd": (torch.optim.SGD, None), "sgd_nesterov": (torch.optim.SGD, None),
                      "adamw_8bit": (bnb.optim.AdamW, False), "paged_adamw_8bit": (bnb.optim.AdamW, True)}
EXPECTED_SCHEDULER = {"linearlr": torch.optim.lr_scheduler.LinearLR,
                      "onecycle": torch.optim.lr_scheduler.OneCycleLR}


@pytest.fixture(scope="module")
def tiny_setup(tiny_model_dir, tmp_path_factory):
    import os

    os.environ["FTLAB_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    rows = synthetic_rows(84)  # 64 to train on; validation and test of 10, the fewest a split is scored on
    data = prepare_splits(_raw({"train": rows[:64], "validation": rows[64:74], "test": rows[74:]}), "synthetic",
                          validation_fraction=0.1, test_fraction=0.1, data_seed=0, max_train=None, max_eval=None,
                          max_test=None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return data, tokenizer, tokenize_splits(data.splits, tokenizer, 32, False)


class LearningRates(TrainerCallback):
    """The learning rate each optimizer step used: read between optimizer.step() and the scheduler's step."""

    def __init__(self):
        self.used = []

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.used.append(float(optimizer.param_groups[0]["lr"]))


def _train(tiny_setup, tiny_model_dir, tmp_path, *flags):
    data, tokenizer, tokenized = tiny_setup
    cfg = plan_run(["--model", str(tiny_model_dir), "--method", "full", "--batch_size", "8", "--lr", "1e-3",
                      "--output_dir", str(tmp_path / "run"), *flags])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    trainer = build_trainer(model, tokenizer, tokenized, data, cfg, str(tmp_path / "run"))
    trainer.learning_rates = LearningRates()
    trainer.add_callback(trainer.learning_rates)
    output = trainer.train()
    return trainer, output


def expected_learning_rates(scheduler: str, lr: float, steps: int, warmup_ratio: float) -> list[float]:
    """Each schedule's formula, written out here rather than taken from transformers or torch: the learning rate
    of optimizer step s (0-based) of `steps`."""
    warmup = math.ceil(warmup_ratio * steps)
    peak = warmup_ratio * steps - 1  # OneCycleLR: the step at which the rate tops out (pct_start = warmup ratio)
    initial = lr / 25  # OneCycleLR's default div_factor, then final_div_factor 1e4
    final = initial / 1e4

    def factor(s: int) -> float:
        if scheduler in ("linear", "cosine", "constant_with_warmup") and s < warmup:
            return s / warmup
        if scheduler == "linear":
            return (steps - s) / (steps - warmup)
        if scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup)))
        if scheduler in ("constant", "constant_with_warmup"):
            return 1.0
        if scheduler == "linearlr":
            return 1 - s / steps
        if s <= peak:  # onecycle: cosine up from lr/25 to lr, then cosine down to lr/25e4
            return (initial + (lr - initial) * (1 - math.cos(math.pi * s / peak)) / 2) / lr
        return (final + (lr - final) * (1 + math.cos(math.pi * (s - peak) / (steps - 1 - peak))) / 2) / lr

    return [lr * factor(s) for s in range(steps)]


def test_expected_learning_rates_read_as_the_schedules_do():
    """The formulas above, at the points where each schedule's shape is known without them."""
    lrs = {name: expected_learning_rates(name, 1.0, 8, 0.25) for name in SCHEDULERS}
    assert lrs["linear"][:3] == [0.0, 0.5, 1.0] and lrs["linear"][-1] == pytest.approx(1 / 6)
    assert lrs["cosine"][2] == 1.0 and lrs["cosine"][5] == pytest.approx(0.5)
    assert lrs["constant"] == [1.0] * 8 and lrs["constant_with_warmup"] == [0.0, 0.5] + [1.0] * 6
    assert lrs["linearlr"][0] == 1.0 and lrs["linearlr"][4] == 0.5
    assert lrs["onecycle"][0] == pytest.approx(1 / 25) and lrs["onecycle"][1] == 1.0
    assert lrs["onecycle"][7] == pytest.approx(1 / 25e4)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_and_scheduler_trains(optimizer, scheduler, tiny_setup, tiny_model_dir, tmp_path):
    # bitsandbytes 0.50 runs its 8-bit and paged optimizers on CPU too, so nothing here needs skipping.
    trainer, output = _train(tiny_setup, tiny_model_dir, tmp_path, "--optimizer", optimizer,
                             "--scheduler", scheduler, "--epochs", "1", "--warmup_ratio", "0.25")
    built = trainer.optimizer.optimizer  # the Trainer's accelerate wrapper holds the real one
    cls, paged = EXPECTED_OPTIMIZER[optimizer]
    assert type(built) is cls
    if paged is not None:
        assert built.args.optim_bits == 8 and built.is_paged is paged
    if scheduler in EXPECTED_SCHEDULER:
        assert type(trainer.lr_scheduler) is EXPECTED_SCHEDULER[scheduler]
    assert trainer.state.global_step == 8  # 64 training rows / batch 8
    # Every step's learning rate is the schedule's (2 warm-up steps of 8 where the schedule warms up).
    assert trainer.learning_rates.used == pytest.approx(expected_learning_rates(scheduler, 1e-3, 8, 0.25),
                                                        rel=1e-6, abs=1e-12)
    assert math.isfinite(output.training_loss)


def test_sgd_nesterov_and_momentum_reach_torch(tiny_setup, tiny_model_dir, tmp_path):
    trainer, _ = _train(tiny_setup, tiny_model_dir, tmp_path, "--optimizer", "sgd_nesterov", "--momentum", "0.8",
                        "--epochs", "1")
    group = trainer.optimizer.param_groups[0]
    assert group["nesterov"] is True and group["momentum"] == 0.8


def test_onecycle_counts_optimizer_steps_with_gradient_accumulation(tiny_setup, tiny_model_dir, tmp_path):
    # 64 rows, batch 8, accumulation 4, 3 epochs: 2 optimizer steps per epoch, 6 in all; OneCycleLR raises
    # if it is stepped more often than its total_steps.
    trainer, _ = _train(tiny_setup, tiny_model_dir, tmp_path, "--scheduler", "onecycle", "--optimizer", "sgd",
                        "--gradient_accumulation_steps", "4", "--epochs", "3")
    assert trainer.state.global_step == 6
    assert trainer.lr_scheduler.total_steps == 6
    # cycle_momentum is off by default: SGD's momentum is left alone.
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9


def test_linearlr_decays_to_zero_over_the_real_step_count(tiny_setup, tiny_model_dir, tmp_path):
    trainer, _ = _train(tiny_setup, tiny_model_dir, tmp_path, "--scheduler", "linearlr", "--epochs", "2")
    assert trainer.state.global_step == 16
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("cycle_momentum", [False, True])
def test_onecycle_without_warmup_peaks_at_30_percent_and_cycles_momentum_only_when_asked(cycle_momentum):
    """--warmup_ratio 0 means OneCycleLR's own default warm-up (30% of the steps), not none and not a ratio above 1;
    --cycle_momentum true hands momentum to the schedule (0.85..0.95), false leaves SGD's own."""
    from ftlab.runs.plan import plan_run
    from ftlab.training.optim import scheduler_factory

    args = plan_run(["--optimizer", "sgd", "--momentum", "0.9", "--scheduler", "onecycle", "--warmup_ratio", "0",
                     "--cycle_momentum", str(cycle_momentum).lower()]).optim
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    scheduler = scheduler_factory(args)(optimizer, 20)
    lrs, momenta = [], []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        momenta.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        scheduler.step()
    assert max(range(20), key=lrs.__getitem__) == 5  # the peak at pct_start * 20 - 1 with pct_start 0.3
    if cycle_momentum:
        assert min(momenta) == pytest.approx(0.85) and momenta[0] == pytest.approx(0.95)
    else:
        assert set(momenta) == {0.9}
