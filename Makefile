# The two commands of the README:
#   make run   - install what is needed, then run Treadle on the embedded default (SQLite)
#                with the example app (examples/starter); APP=module:attr serves your own
#   make test  - install what is needed, then lint, type-check and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
APP    ?= examples.starter.app:app
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run test lint typecheck pytest system-deps bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/treadle up --app $(APP) $(ARGS)

system-deps:
	@for script in scripts/deps/*.sh; do bash "$$script" || exit 1; done

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy --strict src/treadle tests

# Two test processes (xdist): most tests wait on subprocesses, servers and disks, so two
# fill two cores; every test has its own database, so they share nothing but the servers.
PYTEST_WORKERS ?= 2

pytest: install system-deps
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
