"""main.py in a child of a fork server that has the heavy libraries imported already.

A new interpreter spends about 10 s of CPU importing torch, transformers' Trainer, peft and datasets (2-core AMD
EPYC), which is most of what a small end-to-end test costs, and the suite starts main.py about a hundred times.
multiprocessing's forkserver imports them once per test worker, in a process of its own that has run nothing else
(no test's state, no threads, pristine library settings), and forks each run of main.py from it: the run is a
process of its own as before, with its own environment, directory, output and exit code, and main.py's code runs
whole, from its first line; only those imports are already done.

What the libraries read from the environment when they are imported cannot change in a forked child, so a run
whose environment differs from the server's in such a variable (`import_time_differences`) takes a new interpreter.
"""
from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import traceback
import weakref
from pathlib import Path
from unittest import mock

# scipy and scikit-learn (metrics, the baseline's SVM) cost another 1.2 s after the others.
PRELOAD = ["torch", "transformers", "transformers.trainer", "peft", "datasets", "scipy.stats", "sklearn.metrics",
           "sklearn.svm", "sklearn.feature_extraction.text"]
# Prefixes of the variables those libraries (and the OpenMP, BLAS, CUDA and allocator libraries under them) read
# on import.
IMPORT_TIME_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "DATASETS_", "PEFT_", "TORCH",
                        "PYTORCH_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "CUDA_", "BNB_", "WANDB_", "SCIPY_",
                        "SKLEARN_", "JOBLIB_", "LOKY_")

_server_started = False


# Set by the libraries themselves, so a test process has them once it used them and a new interpreter would set
# them alike: torch sets the first when inductor is first used (and reads it then); scikit-learn and joblib set the
# other two with setdefault on import, for Intel's OpenMP, which the Linux wheels of torch and scikit-learn do not
# load (they use GNU's). Compared, they sent every run_main after a test process's first scikit-learn import to a
# new interpreter.
SET_BY_THE_LIBRARIES = frozenset({"TORCHINDUCTOR_CACHE_DIR", "KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"})


def import_time_differences(env: dict[str, str], base: dict[str, str]) -> list[str]:
    """The variables that the preloaded libraries read on import and that `env` sets, changes or drops from `base`
    (a run with any takes a new interpreter)."""
    return sorted(name for name in set(env) | set(base) if env.get(name) != base.get(name)
                  and name.startswith(IMPORT_TIME_PREFIXES) and name not in SET_BY_THE_LIBRARIES)


def _child(main_py: str, argv: list[str], cwd: str, env: dict[str, str], out: str, err: str) -> None:
    """Run main.py the way `python main.py ARGV` does from here on, then end the process with its exit status."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path.insert(0, os.path.dirname(main_py))
    # One open file for both where stderr goes to stdout (2>&1): a shared offset, so neither overwrites the other.
    handles = {path: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) for path in {out, err}}
    os.dup2(handles[out], 1)
    os.dup2(handles[err], 2)
    for handle in handles.values():
        os.close(handle)
    sys.argv = [main_py, *argv]
    code = 0
    try:
        runpy.run_path(main_py, run_name="__main__")
    except SystemExit as exc:  # as the interpreter maps sys.exit's argument to a status
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - an uncaught error: its traceback and status 1, as an interpreter gives
        traceback.print_exc()
        code = 1
    # A multiprocessing child skips the interpreter's shutdown; what main.py registered to run at exit must run.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code & 0xFF)


def _ensure_server(base_env: dict[str, str]) -> multiprocessing.context.BaseContext:
    """The fork-server context, its server started on first use in `base_env`."""
    global _server_started
    context = multiprocessing.get_context("forkserver")
    if not _server_started:
        context.set_forkserver_preload(PRELOAD)
        with mock.patch.dict(os.environ, base_env, clear=True):
            multiprocessing.forkserver.ensure_running()
        _server_started = True
    return context


class Started:
    """A main.py forked from the fork server, with the part of subprocess.Popen's interface that the tests use
    (pid, poll, wait, send_signal, kill, communicate, returncode). Its output goes to files, so a child that writes
    much never blocks on a pipe nobody reads."""

    def __init__(self, main_py: Path, args: list[str], cwd: Path, env: dict[str, str], base_env: dict[str, str],
                 merge_stderr: bool = False):
        self.args = [sys.executable, str(main_py), *args]
        directory = tempfile.mkdtemp(prefix="ftlab-main-")
        weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self._out = Path(directory, "stdout")
        self._err = self._out if merge_stderr else Path(directory, "stderr")
        self._process = _ensure_server(base_env).Process(
            target=_child, args=(str(main_py), list(args), str(cwd), env, str(self._out), str(self._err)))
        self._process.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self._process.kill()

    def communicate(self, timeout: float | None = None) -> tuple[str, str | None]:
        """(stdout, stderr) once the child has ended; stderr is None where it went to stdout."""
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired as expired:
            expired.output, expired.stderr = self._read()
            raise
        return self._read()

    def _read(self) -> tuple[str, str | None]:
        return _read(self._out), None if self._err == self._out else _read(self._err)


@atexit.register
def _kill_leftovers() -> None:
    """Kill the runs a failed test left running: multiprocessing joins its children at exit, which would hang the
    test worker (atexit runs this first, as it was registered after multiprocessing's own exit function)."""
    for child in multiprocessing.active_children():
        child.kill()


def _read(path: Path) -> str:
    """What the child wrote there; nothing if it died before it opened the file."""
    return path.read_text(errors="replace") if path.exists() else ""
