# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
ARGS ?=
PYTEST_ARGS ?=

$(VENV)/.installed: setup.cfg pyproject.toml scripts/setup_env.sh
	PYTHON=$(PYTHON) bash scripts/setup_env.sh $(VENV)
	touch $@

.PHONY: setup run test
setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/python main.py $(ARGS)

# Two workers: most tests wait on a fresh interpreter's imports, so two at a time nearly halve the wall time on
# two cores (tests/conftest.py gives each worker one OpenMP thread).
TEST_WORKERS ?= 2

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
