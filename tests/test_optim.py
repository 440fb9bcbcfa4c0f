"""Every optimizer x scheduler trains a few steps through the harness's own Trainer on a tiny model."""
import math

import bitsandbytes as bnb
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

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
    data = prepare_splits(_raw({"train": synthetic_rows(80)}), "synthetic", validation_fraction=0.1,
                          test_fraction=0.1, data_seed=0, max_train=None, max_eval=None, max_test=None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    return data, tokenizer, tokenize_splits(data.splits, tokenizer, 32, False)


def _train(tiny_setup, tiny_model_dir, tmp_path, *flags):
    data, tokenizer, tokenized = tiny_setup
    cfg = plan_run(["--model", str(tiny_model_dir), "--method", "full", "--batch_size", "8", "--lr", "1e-3",
                      "--output_dir", str(tmp_path / "run"), *flags])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    trainer = build_trainer(model, tokenizer, tokenized, data, cfg, str(tmp_path / "run"))
    output = trainer.train()
    return trainer, output


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_and_scheduler_trains(optimizer, scheduler, tiny_setup, tiny_model_dir, tmp_path):
    # bitsandbytes 0.50 runs its 8-bit and paged optimizers on CPU too, so nothing here needs skipping.
    trainer, output = _train(tiny_setup, tiny_model_dir, tmp_path, "--optimizer", optimizer,
                             "--scheduler", scheduler, "--epochs", "1")
    built = trainer.optimizer.optimizer  # the Trainer's accelerate wrapper holds the real one
    cls, paged = EXPECTED_OPTIMIZER[optimizer]
    assert type(built) is cls
    if paged is not None:
        assert built.args.optim_bits == 8 and built.is_paged is paged
    if scheduler in EXPECTED_SCHEDULER:
        assert type(trainer.lr_scheduler) is EXPECTED_SCHEDULER[scheduler]
    assert trainer.state.global_step == 8  # 64 training rows / batch 8
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
