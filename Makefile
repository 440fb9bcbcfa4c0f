# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt scripts/setup_env.sh
	PYTHON=$(PYTHON) bash scripts/setup_env.sh $(VENV)
	touch $@

.PHONY: setup run test docs lock
setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/python main.py $(ARGS)

# Two workers on two cores (tests/conftest.py gives each one OpenMP thread): measured on a 2-core AVX2 EPYC before
# run_main's fork server (tests/main_fork.py), the suite took 18.7 min with two and 19.6 min with three, the third's
# share of the waits (SLURM, servers, ranks) lost to contention; on a 2-core AVX512-BF16 EPYC with it (2026-12-04),
# 365 s with two and 351 s with three, within the run-to-run spread (about 40 s), so two stay.
TEST_WORKERS ?= 2

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The manual (mkdocs-material, from the dev extra) into site/; --strict fails on a broken link, anchor or page.
# NO_MKDOCS_2_WARNING quiets mkdocs-material's banner about its successor, which is not about these pages.
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/python -m mkdocs build --strict

# constraints.txt from the environment as it stands (after upgrading a dependency in it and passing make test).
lock: $(VENV)/.installed
	{ sed -n '1,2p' constraints.txt; $(VENV)/bin/pip freeze --local | grep -v '^-e\|^ftlab\|^torch=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
