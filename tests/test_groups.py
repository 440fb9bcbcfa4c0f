"""Configuration groups: which fields make a configuration, its id, old records, and adapters over seeds."""
import json

import pytest

from ftlab.config import FIELDS, IDENTITY_FIELDS
from ftlab.errors import ConfigError
from ftlab.config import ADAPTER_PROVENANCE, config_from_record, group_id
from ftlab.runs.plan import expand_seeds, plan_run
from ftlab.runs.record import RunRecord


def test_identity_leaves_out_exactly_the_fields_that_cannot_change_the_model():
    left_out = set(FIELDS) - IDENTITY_FIELDS
    assert left_out == {"seed", "seeds", "output_dir", "overwrite_output_dir", "resume", "logging_steps",
                        "save_steps", "save_total_limit", "save_adapter", "merge", "eval_batch_size",
                        "dataloader_num_workers", "profile_steps", "gradient_checkpointing", "trust_remote_code",
                        "wandb_mode",
                        "wandb_project", "wandb_group",
                        "run_name", "keep_checkpoints", "verbose"}


def test_group_id_ignores_seed_and_output_but_not_what_trains(tmp_path):
    base = group_id(plan_run([]), "lora")
    assert len(base) == 12 and int(base, 16) >= 0
    assert group_id(plan_run(["--seed", "7", "--output_dir", str(tmp_path), "--logging_steps", "3",
                                "--wandb_project", "p", "--eval_batch_size", "8"]), "lora") == base
    for flags in (["--lora_r", "16"], ["--data_seed", "1"], ["--max_test_samples", "500"], ["--lr", "1e-4"]):
        assert group_id(plan_run(flags), "lora") != base, flags
    assert group_id(plan_run([]), "tfidf_svm") != base  # the baseline's record, on a default config
    # A record written before the speed section and --seeds existed: today's defaults fill them in.
    old = plan_run([]).to_dict()
    del old["run"]["seeds"]
    for key in list(old["speed"]):
        if key not in ("attention_dropout", "hidden_dropout"):
            del old["speed"][key]
    assert group_id(config_from_record(old), "lora") == base


def test_records_from_before_a_changed_default_keep_what_they_did():
    """Pooling, truncation and attention and hidden dropout arrived with defaults that train differently (mean
    pooling for MiniLM, head_tail, no dropout in the encoder on CPU): a record without them was a cls/head/0.1/0.1
    run and must not join the seeds of today's default configuration."""
    today = plan_run([]).to_dict()
    del today["model"]["pooling"], today["data"]["truncation"]
    del today["speed"]["attention_dropout"], today["speed"]["hidden_dropout"]
    as_before = group_id(plan_run(["--pooling", "cls", "--truncation", "head", "--attention_dropout", "0.1",
                                     "--hidden_dropout", "0.1"]), "lora")
    assert group_id(config_from_record(today), "lora") == as_before != group_id(plan_run([]), "lora")


def test_precision_groups_by_what_ran_not_by_auto():
    """`--precision auto` is bf16 on a bf16 CPU and fp32 on others (on every CPU before bf16 CPUs got bf16): a run
    is grouped by the precision it resolved to, so auto and the explicit value it stood for are one group."""
    auto, fp32, bf16 = (plan_run(["--precision", p]) for p in ("auto", "fp32", "bf16"))
    assert group_id(auto, "lora", "fp32") == group_id(fp32, "lora", "fp32") == group_id(fp32, "lora")
    assert group_id(auto, "lora", "bf16") == group_id(bf16, "lora", "bf16") != group_id(auto, "lora", "fp32")
    # A record without a stored group is grouped the same way, by the precision it says it ran.
    record = RunRecord({"method": "lora", "config": auto.to_dict(), "precision": "bf16"})
    assert record.group == group_id(bf16, "lora", "bf16")


def _adapter(directory, group=None):
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text("{}")
    if group:
        (directory / ADAPTER_PROVENANCE).write_text(json.dumps({"group": group}))
    return directory


def test_seeds_expand_to_seed_directories_and_their_own_adapters(tmp_path):
    for seed in (1, 2):
        _adapter(tmp_path / "adapters" / f"seed{seed}", group="0123456789ab")
    cfg = plan_run(["--method", "head", "--seeds", "1,2", "--output_dir", str(tmp_path / "chain"),
                      "--load_adapter", str(tmp_path / "adapters")])
    runs = expand_seeds(cfg)
    assert [(r.run.seed, r.run.seeds, r.run.output_dir, r.method.load_adapter) for r in runs] == [
        (seed, None, str(tmp_path / "chain" / f"seed{seed}"), str(tmp_path / "adapters" / f"seed{seed}"))
        for seed in (1, 2)]
    # Different adapter directories trained by one configuration: one group.
    assert group_id(runs[0], "head") == group_id(runs[1], "head")
    unknown = plan_run(["--method", "head", "--load_adapter", str(_adapter(tmp_path / "elsewhere"))])
    assert group_id(unknown, "head") != group_id(runs[0], "head")
    with pytest.raises(ConfigError, match=r"no adapter_config.json there \(nor in its seed3/\)"):
        plan_run(["--method", "head", "--seeds", "1,3", "--load_adapter", str(tmp_path / "adapters")])
    saving = plan_run(["--seeds", "4,5", "--save_adapter", str(tmp_path / "new")])
    assert [r.method.save_adapter for r in expand_seeds(saving)] == [str(tmp_path / "new" / f"seed{seed}")
                                                                     for seed in (4, 5)]
