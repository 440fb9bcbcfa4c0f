"""Shared fixtures: a tiny DistilBERT built from a config (no download) and small learnable datasets."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from unittest import mock

import pytest

from tests import main_fork

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent
POSITIVE = ["good", "great", "wonderful", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "terrible", "dreadful", "boring"]
NEUTRAL = ["the", "film", "movie", "plot", "actor", "scene", "was", "and", "it", "story", "very", "quite"]

# Tests never reach the hub: the offline path is what they check.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# Nothing from the caller's shell decides what a test sees (every main.py a test starts inherits this process's
# environment): no W&B settings (WANDB_MODE=offline would hide the online-to-offline fallback; tests that track
# set their own), an empty hub cache of the tests' own instead of the caller's HF_HOME (a cached model or dataset
# there would answer what must fail offline), and no GPU, as the suite checks the CPU paths (their defaults:
# fp32 attention under bf16, no dropout; tests/test_attention.py fakes CUDA where it checks the GPU ones).
for _name in [name for name in os.environ if name.startswith("WANDB_")]:
    del os.environ[_name]
for _name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ASSETS_CACHE", "HF_TOKEN_PATH", "TRANSFORMERS_CACHE"):
    os.environ.pop(_name, None)
os.environ["HF_HOME"] = os.path.join(tempfile.gettempdir(), "ftlab-tests-hf-home")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
# Under pytest-xdist every worker (and every main.py it starts) gets one OpenMP thread: two workers with a thread
# per core each would oversubscribe the cores, which makes small models many times slower, not 2x.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
# The environment every test starts from, and in which run_main's fork server imports the libraries.
BASE_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(autouse=True)
def own_environment():
    """Each test starts from the environment above and leaves it as it found it. Libraries that a test runs in
    this process write to os.environ: W&B its service address (WANDB_SERVICE: a main.py that a later test starts
    would attach to that service, which belongs to another run and writes none of the child's files), ftlab's
    runtime its progress-bar switches (a variable read on import, which would send every later run_main to a new
    interpreter)."""
    with mock.patch.dict(os.environ):
        os.environ.pop("WANDB_SERVICE", None)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    """A fixture that several tests share (module or session scope) is set up outside any test's own_environment,
    so what it changes in os.environ (an in-process cli.main sets ftlab's progress-bar switches) would stay for the
    rest of the worker and send every later run_main to a new interpreter; it is undone once the fixture is set up."""
    if fixturedef.scope == "function":
        return (yield)
    with mock.patch.dict(os.environ):
        return (yield)


def word_level_tokenizer(style: str = "bert"):
    """A word-level tokenizer over the fixture vocabulary. style: "bert" ([CLS] text [SEP], a [PAD] token),
    "llama" (<s> text, no pad token: a decoder LM's), "gpt2" (no special tokens added, no pad token), "bart"
    (<s> text </s>, a <pad> token: an encoder-decoder's)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = {"bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "llama": ["<unk>", "<s>", "</s>"],
                "gpt2": ["<|endoftext|>"], "bart": ["<pad>", "<unk>", "<s>", "</s>"]}[style]
    words = specials + sorted(set(POSITIVE + NEGATIVE + NEUTRAL + ["neutral", "meh", "okay"]))
    vocab = {word: i for i, word in enumerate(words)}
    unknown = next((token for token in ("[UNK]", "<unk>") if token in vocab), specials[0])
    backend = Tokenizer(WordLevel(vocab, unk_token=unknown))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if style == "bert":
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                       cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    if style == "bart":
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])])
        return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                                       eos_token="</s>")
    if style == "llama":
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
        return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                                   eos_token="<|endoftext|>")


# CI sets it (.ci/run): the tests that need a local SLURM or PostgreSQL then fail where these cannot start, instead
# of skipping, so that a broken set-up cannot hide a broken feature. Elsewhere (no root, no apt) they skip.
REQUIRE_INFRA = "FTLAB_REQUIRE_INFRA"


def infrastructure_missing(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it as the first line when $FTLAB_REQUIRE_INFRA is 1."""
    if os.environ.get(REQUIRE_INFRA) == "1":
        pytest.fail(f"{REQUIRE_INFRA}=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def build_tiny_model_dir(out: Path, num_labels: int = 2, seed: int = 0, arch: str = "distilbert") -> Path:
    """A 2-layer DistilBERT (or, with arch="bert", BERT; hidden 32) and a word-level tokenizer over the fixture
    vocabulary, saved like a hub checkpoint so that `--model DIR` loads it through the real from_pretrained path.

    Like a real pretrained encoder, its body already tells the sentiment words apart: it is briefly trained on
    the synthetic task, then its head is re-initialised. (On a random frozen body LoRA and head-only training
    land anywhere between chance and 100% depending on the init seed, which would test nothing.)"""
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                              DistilBertForSequenceClassification)

    from ftlab.models.architectures import discover

    tokenizer = word_level_tokenizer()
    vocab = tokenizer.get_vocab()
    # 512 positions, as the real encoders have: the default --max_length (256) fits, as it does for them.
    if arch == "bert":
        model_class = BertForSequenceClassification
        config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=512, num_labels=num_labels, pad_token_id=0)
    else:
        model_class = DistilBertForSequenceClassification
        config = DistilBertConfig(vocab_size=len(vocab), dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                  max_position_embeddings=512, num_labels=num_labels, pad_token_id=0)
    torch.manual_seed(seed)
    model = model_class(config)
    rows = synthetic_rows(256, seed=1000 + seed, classes=("pos", "neg", "neutral")[:max(2, num_labels)])
    batch = tokenizer([text for text, _ in rows], padding=True, return_tensors="pt")
    names = sorted({label for _, label in rows})
    labels = torch.tensor([names.index(label) for _, label in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(60):
        part = slice(32 * (step % 8), 32 * (step % 8 + 1))
        model(input_ids=batch["input_ids"][part], attention_mask=batch["attention_mask"][part],
              labels=labels[part]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for linear in discover(model).head_linears:
        model.get_submodule(linear).reset_parameters()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-distilbert"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert"), arch="bert")


def nonzero_lora_b(model: torch.nn.Module) -> None:
    """LoRA's B starts at zero, which would make a merge trivially exact: give it weights."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)


def synthetic_rows(n: int, seed: int = 0, classes: tuple[str, ...] = ("pos", "neg")) -> list[tuple[str, str]]:
    """Texts whose label is given away by one sentiment word among neutral filler: learnable in a few steps."""
    rng = random.Random(seed)
    cue = {"pos": POSITIVE, "neg": NEGATIVE, "neutral": ["neutral", "meh", "okay"]}
    rows = []
    for i in range(n):
        label = classes[i % len(classes)]
        words = rng.choices(NEUTRAL, k=rng.randint(4, 12))
        words.insert(rng.randrange(len(words)), rng.choice(cue[label]))
        rows.append((" ".join(words), label))
    return rows


def noisy_rows(n: int, flipped: float = 0.25, seed: int = 0) -> list[tuple[str, str]]:
    """synthetic_rows with a share of the labels flipped: full fine-tuning first learns the cue words, then
    memorises the noise, so the validation loss falls, then rises (what early stopping is for)."""
    import numpy as np

    flips = np.random.default_rng(seed).random(n) < flipped
    other = {"pos": "neg", "neg": "pos"}
    return [(text, other[label] if flip else label) for (text, label), flip in zip(synthetic_rows(n), flips)]


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("sentence", "polarity")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ftlab cache for tests that must see what gets written to it."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FTLAB_CACHE", str(path))
    return path


def start_main(*args: str, cwd: Path, env: dict | None = None, fresh: bool = False,
               merge_stderr: bool = False) -> main_fork.Started | subprocess.Popen:
    """main.py as users run it, in a process of its own, left running: forked from a server that imported the heavy
    libraries once (tests/main_fork.py), or, with `fresh` (a test of what the start of an interpreter costs or
    imports) or an environment that those libraries read differently on import, a new interpreter. Either way a
    handle with Popen's pid, poll, wait, send_signal, kill, communicate and returncode. `merge_stderr`: 2>&1."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    if fresh or main_fork.import_time_differences(full_env, BASE_ENV):
        return subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], cwd=cwd, env=full_env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
    return main_fork.Started(ROOT / "main.py", list(args), cwd, full_env, BASE_ENV, merge_stderr)


def run_main(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600,
             fresh: bool = False) -> subprocess.CompletedProcess:
    """main.py ARGS started as start_main starts it, run to its end: what subprocess.run(..., capture_output=True,
    text=True, timeout=timeout) returns (a run past `timeout` is killed and TimeoutExpired raised)."""
    started = start_main(*args, cwd=cwd, env=env, fresh=fresh)
    try:
        out, err = started.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        started.kill()
        started.wait()
        raise
    return subprocess.CompletedProcess(started.args, started.returncode, out, err)


def free_port() -> int:
    """A TCP port nothing listens on now (for rendezvous and daemons that must not meet another test's)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory: pytest.TempPathFactory):
    """The environment in which sbatch talks to a fresh local SLURM (and the jobs find this checkout).

    scripts/slurm/local_cluster.sh brings it up (see tests/test_slurm.py). Session-scoped: tests that use it are
    marked `pytest.mark.xdist_group("slurm")`, so under `make test` (--dist loadgroup) one worker owns one cluster.
    """
    directory = tmp_path_factory.mktemp("slurm")
    # Ports of our own, so that a SLURM already running here (or a second test session) does not answer.
    env = {**os.environ, "SLURMCTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}
    command = ["bash", str(ROOT / "scripts" / "slurm" / "local_cluster.sh"), "start", str(directory)]
    stop = ["bash", str(ROOT / "scripts" / "slurm" / "local_cluster.sh"), "stop", str(directory)]
    try:
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        subprocess.run(stop, env=env, timeout=60)
        infrastructure_missing(f"local SLURM: `{' '.join(command)}` timed out after {exc.timeout} s")
    if started.returncode != 0:
        subprocess.run(stop, env=env, timeout=60)  # whatever daemons did start
        infrastructure_missing(f"local SLURM could not be started: `{' '.join(command)}` exited "
                               f"{started.returncode}:\n{(started.stderr or started.stdout)[-1500:]}")
    yield {**env, "SLURM_CONF": str(directory / "slurm.conf"), "FTLAB_DIR": str(ROOT),
           "FTLAB_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    subprocess.run(stop, env=env, timeout=60)


# A job's (or array task's) states after which SLURM will not run it again: a requeued job passes through
# REQUEUED and PENDING instead.
SLURM_ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                         "DEADLINE"})


def slurm_records(env: dict, job_id: str) -> list[dict[str, str]]:
    """`scontrol show job -o JOB`: one record per job, or per task (and pending remainder) of an array."""
    shown = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True,
                           timeout=30).stdout
    return [dict(field.split("=", 1) for field in line.split() if "=" in field) for line in shown.splitlines()
            if line.strip()]


def sbatch(env: dict, *args: str, cwd: Path) -> str:
    """Submit with the real sbatch; returns the job id (an array's id)."""
    submitted = subprocess.run(["sbatch", "--parsable", *args], env=env, cwd=cwd, capture_output=True, text=True,
                               timeout=60)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    return submitted.stdout.strip().split(";")[0]


def wait_for_slurm_job(env: dict, job_id: str, timeout: float = 600) -> int:
    """Wait until the job (every task of an array) has ended; its highest exit code, like `sbatch --wait`'s.

    Not `sbatch --wait` itself: it asks slurmctld after 2, 10, 42, 74 s ... (a back-off to 32 s, capped by
    MinJobAge / 2), so a 12-s job held its test for 42 s. Half-second polls end the wait within a second."""
    deadline = time.monotonic() + timeout
    while True:
        records = slurm_records(env, job_id)
        if records and all(record.get("JobState") in SLURM_ENDED for record in records):
            return max(int(record.get("ExitCode", "1:0").split(":")[0]) or
                       (1 if record["JobState"] != "COMPLETED" else 0) for record in records)
        assert time.monotonic() < deadline, f"job {job_id} still running after {timeout} s: {records}"
        time.sleep(0.5)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first: end-to-end runs, several processes, SLURM and every xdist group (whose tests one worker
    runs in a row). xdist hands out work in collection order, so long tests collected last leave the other workers
    idle at the end; first, they run beside the many short ones. A stable sort: the order within each part stays."""
    def short(item: pytest.Item) -> bool:
        return not any(item.get_closest_marker(name) for name in ("e2e", "distributed", "xdist_group"))

    items.sort(key=short)
