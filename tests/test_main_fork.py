"""The tests' way of starting main.py (tests/main_fork.py): runs fork from the server that preloaded the libraries
unless their environment really differs, and a started run behaves as a subprocess.Popen would."""
import os

import joblib  # noqa: F401 - imported for what it sets in os.environ
import sklearn  # noqa: F401

from tests import main_fork
from tests.conftest import BASE_ENV, ROOT, start_main


def test_what_the_libraries_set_on_import_keeps_runs_forked():
    assert os.environ.get("KMP_INIT_AT_FORK") == "FALSE"  # scikit-learn's and joblib's own setting
    # In a whole suite this also checks that no fixture or test before it on this worker left such a variable set.
    assert main_fork.import_time_differences({**os.environ, "PYTHONPATH": str(ROOT)}, BASE_ENV) == []
    assert main_fork.import_time_differences({**BASE_ENV, "HF_HUB_OFFLINE": "0"}, BASE_ENV) == ["HF_HUB_OFFLINE"]


def test_a_started_run_is_forked_and_answers_like_popen(tmp_path):
    run = start_main("--lr", "-1", cwd=tmp_path, merge_stderr=True)
    assert isinstance(run, main_fork.Started) and run.pid > 0
    out, err = run.communicate(timeout=120)
    assert (run.returncode, run.poll(), err) == (2, 2, None)
    assert out.strip() == "error: --lr -1.0: must be a number > 0"
