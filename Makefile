# The two commands: `make run` starts the platform, `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test lint typecheck unit bench setup clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install vTeam with its test tools
	@command -v git >/dev/null || (echo "git is required: apt-get install git" >&2; exit 1)

run: setup ## start the platform on http://$(HOST):$(PORT)
	$(BIN)/vteam up --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy src

test: lint typecheck ## lint, type-check, then every test
	$(BIN)/python -m pytest

bench: setup ## measure API, event and start latency; writes bench/results.json
	$(BIN)/python -m bench.run --out bench/results.json

clean:
	rm -rf $(VENV) .vteam .pytest_cache .mypy_cache .ruff_cache
