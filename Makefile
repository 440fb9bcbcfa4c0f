# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

$(VENV)/.installed: setup.cfg pyproject.toml scripts/setup_env.sh
	PYTHON=$(PYTHON) bash scripts/setup_env.sh $(VENV)
	touch $@

.PHONY: setup run test docs
setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/python main.py $(ARGS)

# Three workers on two cores: most tests wait on a fresh interpreter's imports, and the SLURM, PostgreSQL and
# two-process tests wait on their servers and ranks, so a third worker fills the cores those waits leave idle
# (tests/conftest.py gives each worker one OpenMP thread).
TEST_WORKERS ?= 3

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The manual (mkdocs-material, from the dev extra) into site/; --strict fails on a broken link, anchor or page.
# NO_MKDOCS_2_WARNING quiets mkdocs-material's banner about its successor, which is not about these pages.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/python -m mkdocs build --strict
