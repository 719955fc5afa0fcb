# The two commands: `make run` starts the platform, `make test` checks everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# vTeam with its test tools (`make test`), or only what `vteam up` needs (`make run`); the first implies the second.
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
HOST ?= 127.0.0.1
PORT ?= 8080
# Agent frameworks, pinned, installed into $(AGENTS) by `frameworks`: after the platform starts under `make run`
# (in the background, logging to $(INSTALL_LOG)), before the tests under `make test`. Whoever installs holds
# $(INSTALL_LOCK), so two installs never overlap, and vTeam reads it to tell "installing" from "not installed".
AGENTS := .agents
INSTALL_LOCK := $(AGENTS)/.install.lock
INSTALL_LOG := $(AGENTS)/install.log
CODEX_VERSION := 0.169.0
CODEX_STAMP := $(AGENTS)/.codex-$(CODEX_VERSION)
# mini-swe-agent lives in a venv of its own: its litellm needs openai<3, and vTeam's tests use openai 3.
MINI_SWE_VERSION := 2.4.6
MINI_SWE_STAMP := $(AGENTS)/.mini-swe-agent-$(MINI_SWE_VERSION)
GEMINI_VERSION := 0.61.0
GEMINI_STAMP := $(AGENTS)/.gemini-cli-$(GEMINI_VERSION)
# The web UI's front-end libraries (npm htmx.org and its SSE extension), served by vteam up from $(WEB); never copied
# into the repo. Fetched without node from $(NPM_REGISTRY), each tarball checked against its npm `dist.integrity`
# pinned here (after a version change: `npm view htmx.org@VERSION dist.integrity`).
WEB := .web
NPM_REGISTRY ?= https://registry.npmjs.org
HTMX_VERSION := 2.0.11
HTMX_INTEGRITY := sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==
HTMX_SSE_VERSION := 2.2.4
HTMX_SSE_INTEGRITY := sha512-LJmxVhykyflBWgh5PvbRidcyuqMHlgfajmmzumvKctv9puvsufeH6OaejSMZTNTnEI8O2wXXn4ZZtBdpEMqmEQ==
WEB_STAMP := $(WEB)/.htmx-$(HTMX_VERSION)-sse-$(HTMX_SSE_VERSION)
# GitHub's published REST description (npm @octokit/openapi): the fake GitHub of the tests checks every
# request and response against it. Installed by `make test` into $(TESTDATA), never copied into the repo.
TESTDATA := .testdata
OCTOKIT_OPENAPI_VERSION := 23.0.2
OCTOKIT_OPENAPI_STAMP := $(TESTDATA)/.octokit-openapi-$(OCTOKIT_OPENAPI_VERSION)

.PHONY: run test lint typecheck bench setup platform frameworks system node clean manifests

# Debian packages the platform needs at run time (git, and bubblewrap for the agents' sandbox); installed when
# missing.
SYSTEM_NEEDS := git bwrap
# ... and what the tests need beside: an ssh server for ssh remotes (package openssh-server), and Debian's
# chromium (/usr/bin/chromium), which the browser tests drive with the playwright package of the dev extras
# (never `playwright install`).
TEST_NEEDS := git bwrap ssh sshd chromium

# Python packages go in with uv (from PyPI, installed into the venv with it), in seconds where pip's resolving and
# downloading takes ~20 s; pip does it where uv cannot be installed. `$(call PIP_INSTALL,python,packages)`.
$(BIN)/python: | system
	$(PYTHON) -m venv $(VENV) || { $(APT) python3-venv && $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -m pip install --quiet uv || echo "uv could not be installed: pip installs instead (slower)" >&2

PIP_INSTALL = if [ -x $(BIN)/uv ]; then $(BIN)/uv pip install --quiet --python $(1) $(2); \
	else $(1) -m pip install --quiet --upgrade pip && $(1) -m pip install --quiet $(2); fi

$(STAMP): $(BIN)/python pyproject.toml
	$(call PIP_INSTALL,$(BIN)/python,-e '.[dev]')
	@touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): $(BIN)/python pyproject.toml
	$(call PIP_INSTALL,$(BIN)/python,-e .)
	@touch $(RUN_STAMP)

PACKAGE_OF = sed -e 's/^bwrap$$/bubblewrap/' -e 's/^sshd$$/openssh-server/' -e 's/^ssh$$/openssh-client/' -e 's/^node$$/nodejs/'
APT = $(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$@"' apt

system: ## install missing system packages with apt-get
	@missing=""; for tool in $(SYSTEM_NEEDS); do command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$(echo $$tool | $(PACKAGE_OF))"; done; \
	if [ -n "$$missing" ]; then \
		command -v apt-get >/dev/null || { echo "please install:$$missing" >&2; exit 1; }; \
		$(APT) $$missing; \
	fi

# Codex CLI (npm @openai/codex; its native binary comes inside the package): installed when missing or when
# CODEX_VERSION changes, with node and npm from apt-get when they are missing.
$(CODEX_STAMP): | node
	npm install --prefix $(AGENTS) --no-audit --no-fund --loglevel=error @openai/codex@$(CODEX_VERSION)
	@rm -f $(AGENTS)/.codex-*
	@touch $(CODEX_STAMP)

# Gemini CLI (npm @google/gemini-cli, bundled JavaScript for node >= 20): installed the same way, when missing or
# when GEMINI_VERSION changes; after Codex, as both go into the same npm prefix.
$(GEMINI_STAMP): | node $(CODEX_STAMP)
	npm install --prefix $(AGENTS) --no-audit --no-fund --loglevel=error @google/gemini-cli@$(GEMINI_VERSION)
	@rm -f $(AGENTS)/.gemini-cli-*
	@touch $(GEMINI_STAMP)

$(MINI_SWE_STAMP): | $(BIN)/python
	$(PYTHON) -m venv $(AGENTS)/mini-swe-agent
	$(call PIP_INSTALL,$(AGENTS)/mini-swe-agent/bin/python,mini-swe-agent==$(MINI_SWE_VERSION) mcp)
	@rm -f $(AGENTS)/.mini-swe-agent-*
	@touch $(MINI_SWE_STAMP)

# A standard-library script, so it needs neither node nor vTeam's dependencies; all or nothing.
$(WEB_STAMP): | $(BIN)/python
	$(BIN)/python -P src/vteam/web/vendor.py --registry $(NPM_REGISTRY) --into $(WEB)/node_modules \
		htmx.org@$(HTMX_VERSION)=$(HTMX_INTEGRITY) htmx-ext-sse@$(HTMX_SSE_VERSION)=$(HTMX_SSE_INTEGRITY)
	@rm -f $(WEB)/.htmx-*
	@touch $(WEB_STAMP)

$(OCTOKIT_OPENAPI_STAMP): | node
	npm install --prefix $(TESTDATA) --no-audit --no-fund --loglevel=error @octokit/openapi@$(OCTOKIT_OPENAPI_VERSION)
	@rm -f $(TESTDATA)/.octokit-openapi-*
	@touch $(OCTOKIT_OPENAPI_STAMP)

# node and npm for the npm installs (the agent CLIs, and the tests' OpenAPI description; the platform needs none),
# once (they may run side by side), after the venv's own system packages, so that two apt-gets never run at once.
node: | $(BIN)/python
	@$(MAKE) --no-print-directory system SYSTEM_NEEDS="node npm"

FRAMEWORK_STAMPS := $(CODEX_STAMP) $(MINI_SWE_STAMP) $(GEMINI_STAMP)

frameworks: | node ## install the agent framework CLIs into .agents (after any install already under way)
	@mkdir -p $(AGENTS)
	@flock $(INSTALL_LOCK) $(MAKE) --no-print-directory $(FRAMEWORK_STAMPS)

platform: system $(RUN_STAMP) $(WEB_STAMP) ## install what `vteam up` itself needs

setup: system $(STAMP) $(WEB_STAMP) frameworks ## create .venv and install vTeam with its test tools and agent CLIs

# The platform starts as soon as its own dependencies are in; the frameworks install meanwhile, each ready (in
# GET /api/runner-types and the web UI) once its CLI is in. `flock -n` skips the install when one is running.
run: platform ## start the platform on http://$(HOST):$(PORT), installing the agent CLIs in the background
	@mkdir -p $(AGENTS)
	@flock -n $(INSTALL_LOCK) sh -c '$(MAKE) --no-print-directory $(FRAMEWORK_STAMPS) > $(INSTALL_LOG) 2>&1' \
		</dev/null >/dev/null 2>&1 &
	@echo "agent frameworks: installing in the background where missing (progress: tail -f $(INSTALL_LOG))"
	$(BIN)/vteam up --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy src

# Tests live by room (tests/<room>/); a module that starts a real vteam, agent CLI, sshd or browser is marked
# `integration`. The type check runs beside the quick tests, which leave a core idle most of the time. The
# integration tests then run in two workers, a module per worker, as most of their time is spent waiting on
# processes; those marked `alone` (they bound how long something takes) run last, by themselves. Each run fails if
# it selects no test (exit 5).
test: ## lint, type-check, then every test
	@# The installs are independent (the venv, npm packages, mini-swe-agent's venv): side by side, they take the
	@# time of the longest.
	@$(MAKE) --no-print-directory -j4 setup $(OCTOKIT_OPENAPI_STAMP)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory system SYSTEM_NEEDS="$(TEST_NEEDS)"
	@mkdir -p test-artifacts
	@echo "$(BIN)/mypy src (beside the quick suites; its report follows them)"
	@$(BIN)/mypy src > test-artifacts/mypy.log 2>&1 & typing=$$!; \
	$(BIN)/python -m pytest tests -m 'not integration'; quick=$$?; \
	wait $$typing; typed=$$?; cat test-artifacts/mypy.log; \
	test $$quick -eq 0 -a $$typed -eq 0
	$(BIN)/python -m pytest tests -m 'integration and not alone' -n 2 --dist loadfile --durations=15
	$(BIN)/python -m pytest tests -m 'integration and alone' --durations=10

bench: setup ## measure creates, reads, event ingest and latency, starts, bursts and memory; writes bench/results.json
	$(BIN)/python -m bench.run --out bench/results.json

# CRDs from the resource models, then each overlay rendered to one file (committed; a test checks both).
OVERLAYS := dev openshift
manifests: $(STAMP) ## regenerate deploy/crds from the models and deploy/rendered from the overlays
	$(BIN)/python -m vteam.resources.crds deploy/crds
	@mkdir -p deploy/rendered
	for overlay in $(OVERLAYS); do kubectl kustomize deploy/overlays/$$overlay > deploy/rendered/$$overlay.yaml || exit 1; done

clean:
	rm -rf $(VENV) $(AGENTS) $(TESTDATA) $(WEB) .vteam .pytest_cache .mypy_cache .ruff_cache test-artifacts
