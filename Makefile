# Billbox: `make demo` to try it, `make test` for what CI runs.
# Every install step the project needs is here; nothing relies on the machine.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: install demo test lint typecheck pytest-sqlite pytest-postgresql test-servers lock bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when the project's requirements or the lock change.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Try Billbox on one machine: SQLite under var/, embedded broker, localstripe as the
## Stripe test account (scripts/demo.sh), no server to install.
demo: install
	BIN=$(BIN) bash scripts/demo.sh

## Servers the tests need that this machine may lack (Dovecot for IMAP).
test-servers:
	bash scripts/ensure-test-servers.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest-sqlite: install
	BILLBOX_TEST_BACKEND=sqlite $(BIN)/pytest

pytest-postgresql: install
	BILLBOX_TEST_BACKEND=postgresql BILLBOX_TEST_DATABASE_URL=$${BILLBOX_TEST_DATABASE_URL:-$(PG_URL)} $(BIN)/pytest

## What CI runs: lint, types, and the whole suite on SQLite and on PostgreSQL.
test: install test-servers lint typecheck pytest-sqlite pytest-postgresql

## Re-pin every installed version after changing dependencies in pyproject.toml.
lock: $(BIN)/python
	$(PIP) install --quiet -e '.[dev]'
	$(PIP) freeze --exclude-editable > constraints.txt

bench: install
	$(BIN)/python -m bench.jobs

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
