# The two commands: `make run` starts the platform, `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test lint typecheck bench setup system clean

# Debian packages the platform needs at run time (git); installed when missing.
SYSTEM_NEEDS := git
# ... and what the tests need beside: an ssh server for ssh remotes (package openssh-server).
TEST_NEEDS := git ssh sshd

$(BIN)/python:
	@$(MAKE) --no-print-directory system
	$(PYTHON) -m venv $(VENV) || { $(APT) python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

PACKAGE_OF = sed -e 's/^sshd$$/openssh-server/' -e 's/^ssh$$/openssh-client/'
APT = $(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$@"' apt

system: ## install missing system packages with apt-get
	@missing=""; for tool in $(SYSTEM_NEEDS); do command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$(echo $$tool | $(PACKAGE_OF))"; done; \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null || { echo "please install:$$missing" >&2; exit 1; }; \
		$(APT) $$missing; \
	fi

setup: system $(STAMP) ## create .venv and install vTeam with its test tools

run: setup ## start the platform on http://$(HOST):$(PORT)
	$(BIN)/vteam up --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy src

test: lint typecheck ## lint, type-check, then every test
	@$(MAKE) --no-print-directory system SYSTEM_NEEDS="$(TEST_NEEDS)"
	$(BIN)/python -m pytest

bench: setup ## measure API, event and start latency; writes bench/results.json
	$(BIN)/python -m bench.run --out bench/results.json

clean:
	rm -rf $(VENV) .vteam .pytest_cache .mypy_cache .ruff_cache
