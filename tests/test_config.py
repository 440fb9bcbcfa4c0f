import json
import time

import pytest
import yaml

from ftlab import methods
from ftlab.commands.baseline import split_baseline_flag
from ftlab.config import DEFAULT_MODEL, FIELDS, build_parser, read_config_file
from ftlab.runs.plan import plan_run
from ftlab.errors import ConfigError, DataError
from tests.conftest import run_main


def test_no_arguments_is_the_embedded_default():
    cfg = plan_run([])
    assert (cfg.method.method, cfg.model.model, cfg.data.dataset) == ("lora", DEFAULT_MODEL, "imdb")
    assert cfg.optim.lr == methods.get("lora").default_lr  # derived default filled in, so the saved config says what ran


def test_file_values_apply_and_flags_override_them(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"method": "ia3", "lora_mlp": False, "epochs": 3, "max_train_samples": "all"}))
    cfg = plan_run(["--config", str(path), "--epochs", "2"])
    assert cfg.method.method == "ia3"
    assert cfg.method.lora_mlp is False
    assert cfg.optim.epochs == 2.0
    assert cfg.data.max_train_samples is None
    assert cfg.optim.lr == methods.get("ia3").default_lr


def test_a_file_value_the_method_does_not_read_is_reset_not_kept(tmp_path):
    """A saved config of one method reused with another (--config lora/config.yaml --method full): the values only
    LoRA reads go back to their defaults, so the new run's config and group say what it ran."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"method": "lora", "lora_r": 4, "lora_init": "pissa"}))
    cfg = plan_run(["--config", str(path), "--method", "full"])
    assert (cfg.method.lora_r, cfg.method.lora_init) == (8, "kaiming")
    assert plan_run(["--config", str(path)]).method.lora_r == 4


def test_json_config_and_group_sections(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"method": {"method": "head"}, "optim": {"batch_size": 4}}))
    cfg = plan_run(["--config", str(path)])
    assert (cfg.method.method, cfg.optim.batch_size) == ("head", 4)


def test_saved_config_reproduces_the_run(tmp_path):
    cfg = plan_run(["--method", "qlora", "--lora_r", "16", "--max_length", "64", "--seed", "7"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    assert plan_run(["--config", str(path)]) == cfg


def test_unknown_key_in_file_is_rejected_with_a_suggestion(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lora_rnk: 4\n")
    with pytest.raises(ConfigError, match=r"unknown key 'lora_rnk' \(did you mean 'lora_r'\?\)"):
        read_config_file(str(path))


def test_bad_value_in_file_names_key_and_allowed(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("lora_r: 0\n")
    with pytest.raises(ConfigError, match=r"--lora_r 0: must be an integer >= 1"):
        plan_run(["--config", str(path)])


@pytest.mark.parametrize("argv, method", [(["--lora"], "lora"), (["--q_lora"], "qlora"), (["--task", "fft"], "full"),
                                          (["--task", "cls"], "head"), (["--task", "lora"], "lora")])
def test_seed_aliases_map_to_method(argv, method):
    assert plan_run(argv).method.method == method


@pytest.mark.parametrize("argv, method", [(["--lora", "True"], "lora"), (["--q_lora", "True"], "qlora"),
                                          (["--q_lora=yes"], "qlora"), (["--q_lora", "false"], "lora"),
                                          (["--q_lora", "false", "--method", "full"], "full")])
def test_seed_aliases_take_a_boolean_value_as_their_readmes_write_them(argv, method):
    assert plan_run(argv).method.method == method


@pytest.mark.parametrize("argv, baseline, rest", [
    (["--check_baseLine", "True", "--dataset", "x"], True, ["--dataset", "x"]),
    (["--dataset", "x", "--check_baseline"], True, ["--dataset", "x"]),
    (["--check_baseline", "--dataset", "x"], True, ["--dataset", "x"]),
    (["--check_baseline=false", "--epochs", "2"], False, ["--epochs", "2"]),
    (["--epochs", "2"], None, ["--epochs", "2"]),
])
def test_check_baseline_takes_an_optional_boolean(argv, baseline, rest):
    assert split_baseline_flag(argv) == (baseline, rest)


@pytest.mark.parametrize("argv, resume", [([], False), (["--resume"], True), (["--resume", "auto"], "auto"),
                                          (["--resume", "false"], False), (["--resume=AUTO"], "auto")])
def test_resume_is_true_false_or_auto(argv, resume, tmp_path):
    run = _interrupted_run(tmp_path / "run")
    assert plan_run([*argv, "--output_dir", str(run)]).run.resume == resume


def _interrupted_run(directory, *flags):
    """An output directory as an interrupted run leaves it: its config and a complete checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(plan_run(list(flags)).to_dict()))
    (directory / "checkpoint-7").mkdir()
    (directory / "checkpoint-7" / "trainer_state.json").write_text("{}")
    return directory


def test_resume_continues_only_the_same_configuration(tmp_path):
    run = _interrupted_run(tmp_path / "run", "--lr", "1e-3", "--epochs", "2")
    # How an attempt runs may change (W&B, resume itself); what it computes may not.
    cfg = plan_run(["--lr", "1e-3", "--epochs", "2", "--output_dir", str(run), "--resume", "auto",
                      "--wandb_project", "p", "--wandb_mode", "offline"])
    assert cfg.run.resume == "auto"
    with pytest.raises(ConfigError, match=r"--resume auto: .*run holds a checkpoint of a run with another "
                                          r"configuration \(--epochs 2.0 there, 1.0 now and 1 more\); repeat"):
        plan_run(["--output_dir", str(run), "--resume", "auto"])
    # A checkpoint from before --pooling existed was trained with the [CLS] head: today's default (mean pooling
    # for MiniLM) must not continue it, an explicit --pooling cls may.
    old = yaml.safe_load((run / "config.yaml").read_text())
    del old["model"]["pooling"]
    (run / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match=r"\(--pooling cls there, auto now\)"):
        plan_run(["--lr", "1e-3", "--epochs", "2", "--output_dir", str(run), "--resume", "auto"])
    assert plan_run(["--lr", "1e-3", "--epochs", "2", "--pooling", "cls", "--output_dir", str(run),
                       "--resume", "auto"]).run.resume == "auto"
    # Nothing to continue: auto starts afresh, true says so.
    assert plan_run(["--output_dir", str(tmp_path / "new"), "--resume", "auto"]).run.resume == "auto"
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        plan_run(["--output_dir", str(tmp_path / "new"), "--resume", "true"])


def test_under_slurm_the_default_output_dir_is_the_jobs(tmp_path, monkeypatch):
    from ftlab.runs.directory import default_output_dir

    monkeypatch.chdir(tmp_path)
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    cfg = plan_run([])
    assert default_output_dir(cfg, "lora").startswith("runs/imdb-lora-20")  # outside SLURM: the start time
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    assert default_output_dir(cfg, "lora") == "runs/imdb-lora-job4242"  # every attempt of the job: one directory
    # A requeued job resumes from it without naming it.
    _interrupted_run(tmp_path / "runs" / "imdb-lora-job4242")
    assert plan_run(["--resume"]).run.resume is True
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "4240")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert default_output_dir(cfg, "lora") == "runs/imdb-lora-job4240_2"


def test_lora_rank_alias_and_conflicts():
    assert plan_run(["--lora_rank", "4"]).method.lora_r == 4
    with pytest.raises(ConfigError, match="conflicting"):
        plan_run(["--lora_rank", "4", "--lora_r", "8"])
    with pytest.raises(ConfigError, match="conflicting method flags"):
        plan_run(["--q_lora", "--task", "fft"])


def test_dataset_name_checked_before_anything_loads():
    with pytest.raises(DataError, match="unknown dataset; use one of imdb, rotten_tomatoes, rotten_tomatoes_ratings, disaster_response, "
                                          "lee_similarity, sst2"):
        plan_run(["--dataset", "nosuch"])
    with pytest.raises(DataError, match="no such file"):
        plan_run(["--dataset", "./missing.csv"])
    assert plan_run(["--dataset", "someone/their_dataset"]).data.dataset == "someone/their_dataset"


@pytest.mark.parametrize("argv, expected", [
    (["--method", "lorra"], "--method lorra: unknown method (did you mean 'lora'?); one of full, head, selective"),
    (["--num_virtual_tokens", "8", "--method", "lora"], "--num_virtual_tokens: --method lora has no such flag (it is "
                                                       "for prompt_tuning, p_tuning, prefix_tuning)"),
    (["--method", "head", "--lora_r", "4"], "--lora_r: --method head has no such flag"),
    (["--method", "full", "--lora_mlp", "false"], "--lora_mlp: --method full has no such target"),
    (["--method", "ia3", "--peft_args", "init_weights=false"], "--peft_args init_weights: not a field of --method "
                                                               "ia3's PEFT config (did you mean 'init_ia3_weights'?"),
    (["--method", "loha", "--peft_args", "rank_dropout=high"], "--peft_args rank_dropout='high': --method loha takes "
                                                               "float there"),
    (["--method", "vera", "--peft_args", "r=64"], "--peft_args r: --method vera sets it from --lora_r"),
    (["--method", "oft", "--peft_args", "block_share"], "--peft_args: 'block_share' is not KEY=VALUE"),
    (["--lora_init", "pisa"], "--lora_init pisa: must be kaiming, gaussian, pissa, pissa_niter_N"),
    (["--lora_init", "loftq"], "--lora_init loftq fits LoRA to a 4-bit base's quantisation error: use --method qlora"),
    (["--lora_r", "0"], "--lora_r 0: must be an integer >= 1"),
    (["--dataset", "nosuch"], "--dataset nosuch: unknown dataset"),
    (["--dataset", "./missing.csv"], "--dataset ./missing.csv: no such file or directory"),
    (["--lr", "-1"], "--lr -1.0: must be a number > 0"),
    (["--max_length", "4"], "--max_length 4: must be an integer from 8 to 8192"),
    (["--batch_size", "two"], "'two' is not an integer >= 1"),
    (["--config", "missing.yaml"], "--config missing.yaml: no such file"),
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--seeds", "1,x"], "--seeds: 'x' is not an integer"),
    (["--lora", "maybe"], "argument --lora: 'maybe' is not true or false"),
    (["--check_baseLine", "maybe"], "argument --check_baseLine: 'maybe' is not true or false"),
])
def test_bad_flag_fails_fast_with_one_line_and_touches_nothing(argv, expected, tmp_path):
    cache = tmp_path / "cache"
    start = time.monotonic()
    proc = run_main(*argv, cwd=tmp_path, env={"FTLAB_CACHE": str(cache)}, timeout=60, fresh=True)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert elapsed < 5, f"took {elapsed:.1f} s"
    # Nothing downloaded, nothing written.
    assert not cache.exists() and not (tmp_path / "runs").exists()


def test_help_lists_the_commands_then_the_train_flags(tmp_path):
    proc = run_main("--help", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0
    from ftlab.commands import COMMANDS

    lines = proc.stdout.splitlines()
    assert lines[:3] == ["usage: main.py [COMMAND] [flags]", "", "commands:"]
    assert [line.split()[0] for line in lines[3:3 + len(COMMANDS)]] == list(COMMANDS)
    assert all(command.SUMMARY in proc.stdout for command in COMMANDS.values())
    for text in ("--method METHOD", "prompt_tuning", "--max_train_samples", "--q_lora",
                 "--task", "--lora_target_modules", "--merge", "--keep_checkpoints {none,best,all}"):
        assert text in proc.stdout
    assert max(len(line) for line in lines[:3 + len(COMMANDS)]) <= 100


def test_baseline_help_shows_only_the_flags_the_baseline_reads(tmp_path):
    proc = run_main("baseline", "--help", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0
    for text in ("--dataset", "--max_train_samples", "--ngram_max", "--output_dir"):
        assert text in proc.stdout
    for text in ("--lora_r", "--lr", "--optimizer", "--epochs", "--q_lora", "--task", "commands:"):
        assert text not in proc.stdout
    # It still accepts the others (one set of flags serves every run of a study) and ignores them.
    assert plan_run(["--epochs", "3", "--dataset", "imdb"]).optim.epochs == 3


def test_each_default_is_shown_once_and_as_one_types_it():
    parser = build_parser()
    helps = {action.dest: action.help for action in parser._actions if action.dest in FIELDS}
    for name, text in helps.items():
        assert text.count("(default") <= 1, name
    assert helps["epochs"].endswith("(default: 1)") and helps["merge"].endswith("(default: false)")
    assert helps["lr"].count("default") == 1 and "(default: None)" not in "".join(helps.values())
    assert helps["keep_checkpoints"].endswith("(default: none)")


def test_a_finished_run_is_not_overwritten_by_accident(tmp_path):
    (tmp_path / "result.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a finished run"):
        plan_run(["--output_dir", str(tmp_path)])
    assert plan_run(["--output_dir", str(tmp_path), "--overwrite_output_dir"]).run.overwrite_output_dir
    assert (tmp_path / "result.json").read_text() == "{}"


@pytest.mark.parametrize("argv, message", [
    (["--resume"], "--resume needs the --output_dir"),
    (["--resume", "--output_dir", "{tmp}"], "no complete checkpoint-* directory in {tmp}"),
    (["--resume", "maybe"], "argument --resume: 'maybe' is not auto, true or false"),
    (["--load_best", "--eval_steps", "5", "--save_steps", "7"], "--save_steps 7 must be a multiple of --eval_steps 5"),
    (["--metric_for_best", "auc"], "invalid choice: 'auc'"),
    (["--wandb_mode", "cloud"], "invalid choice: 'cloud'"),
])
def test_training_loop_flags_are_checked(argv, message, tmp_path):
    (tmp_path / "checkpoint-10").mkdir()  # incomplete: no trainer_state.json
    with pytest.raises(ConfigError, match=message.format(tmp=tmp_path).replace("*", r"\*").replace("(", r"\(")):
        plan_run([arg.format(tmp=tmp_path) for arg in argv])


@pytest.mark.parametrize("env, flags, expected", [
    ({}, [], ("disabled", None)),
    ({}, ["--wandb_project", "p"], ("online", "p")),
    ({"WANDB_PROJECT": "q"}, [], ("online", "q")),
    ({"WANDB_PROJECT": "q", "WANDB_MODE": "offline"}, [], ("offline", "q")),
    ({"WANDB_MODE": "offline"}, [], ("disabled", None)),  # no project: tracking stays opt-in
    ({"WANDB_MODE": "offline"}, ["--wandb_project", "p", "--wandb_mode", "online"], ("online", "p")),
])
def test_wandb_mode_and_project_from_flags_and_environment(env, flags, expected, monkeypatch):
    for name in ("WANDB_PROJECT", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cfg = plan_run(flags)
    assert (cfg.tracking.wandb_mode, cfg.tracking.wandb_project) == expected


# --- seeds ------------------------------------------------------------------------------------------------------

def test_seed_and_seeds_from_file_and_flags(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(plan_run(["--seed", "7"]).to_dict()))  # a run's saved config names its seed
    assert plan_run(["--config", str(path), "--seeds", "1,2"]).run.seeds == [1, 2]
    path.write_text("seeds: [3, 4]\n")
    cfg = plan_run(["--config", str(path), "--seed", "5"])  # the flag replaces the file's seeds
    assert (cfg.run.seed, cfg.run.seeds) == (5, None)
    path.write_text("seed: 1\nseeds: 3,x\n")
    with pytest.raises(ConfigError, match=r"seeds: 'x' is not an integer"):
        plan_run(["--config", str(path)])


def test_flags_for_method_drops_only_the_flags_the_method_does_not_read():
    from ftlab.config import flags_for_method

    argv = ["--lora_r", "4", "--lora_mlp", "--epochs", "2", "--lora_key=false", "--lora_dropout", "0.1",
            "--num_virtual_tokens", "8", "--pad_to_max_length"]
    assert flags_for_method(argv, "full") == ["--epochs", "2", "--pad_to_max_length"]
    assert flags_for_method(argv, "prompt_tuning") == ["--epochs", "2", "--num_virtual_tokens", "8",
                                                       "--pad_to_max_length"]
    assert flags_for_method(argv, "lora") == [a for a in argv if a not in ("--num_virtual_tokens", "8")]
    assert flags_for_method(["--lora_mlp", "false", "--lr", "1"], "head") == ["--lr", "1"]
