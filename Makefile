# Two entry points for a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test check gen baseline lint typecheck pytest clients bench clean

up: $(STAMP)  ## install, then run auth, loans and audit on SQLite under ./var
	$(BIN)/loansuite up

test: $(STAMP) check pytest clients  ## install, then run every check and the whole test suite

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

gen: $(STAMP)  ## regenerate gen/ from protos/
	$(BIN)/python scripts/gen_protos.py

# The released v1 contract that `make check` guards: move it only when a release is cut.
baseline: $(STAMP)
	$(BIN)/buf build protos --exclude-source-info -o protos/baseline/v1.binpb

check: lint typecheck
	$(BIN)/python scripts/gen_protos.py --check
	$(BIN)/buf lint protos
	$(BIN)/buf breaking protos --against protos/baseline/v1.binpb
	$(BIN)/buf breaking protos --against '.git#branch=main,subdir=protos'

lint:
	$(BIN)/ruff check services tests scripts clients/python
	$(BIN)/ruff format --check services tests scripts clients/python

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest

# The TypeScript client: installed from its lock file, generated, compiled, and its
# tests run against a suite that they start (Node.js 20 or newer).
clients: $(STAMP)
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build && npm test

bench: $(STAMP)  ## the benchmark of docs/BENCHMARKS.md
	$(BIN)/loansuite bench

clean:
	rm -rf $(VENV) var clients/typescript/node_modules clients/typescript/dist clients/typescript/src/gen
