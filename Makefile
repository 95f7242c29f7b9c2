# Developer entry points. `make help` lists them. CI runs `.ci/run`, which ends in `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON3 ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
STACK := $(PYTHON3) deploy/local/stack.py
# Empty folders are not in git, so only lint the ones that exist in this checkout.
LINT_PATHS := $(wildcard services testkit tests scripts bench deploy/local)
PYTEST_FLAGS ?= -q -p no:cacheprovider

# The Compose Specification schema comes from compose-go, the reference implementation that
# Docker Compose uses, through the Go module proxy; bump the version here to update it.
COMPOSE_GO_VERSION ?= v2.16.2
COMPOSE_SCHEMA := .stack/schemas/compose-spec.json
# buf (protobuf lint, used by tests/unit/test_protos.py) from the npm registry, whose package
# ships the prebuilt binary; installed under .stack/tools, not globally.
BUF_VERSION ?= 1.75.0
BUF := .stack/tools/node_modules/.bin/buf
# axe-core (accessibility rules the browser tests inject into each dashboard page), same place.
AXE_VERSION ?= 4.11.0
AXE := .stack/tools/node_modules/axe-core/axe.min.js
# helm (chart lint and render, used by tests/unit/test_helm.py), built from its Go module.
HELM_VERSION ?= v3.16.4
HELM := .stack/tools/bin/helm

.PHONY: help venv install-system stack-up stack-down stack-status stack-reset protos protos-check lint \
	typecheck schemas tools helm test-unit test-integration test abuse demo bench

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

venv: $(VENV_STAMP) ## Create .venv and install the project with its dev extras (when pyproject.toml changed)

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install-system: ## Install the Debian packages the stack needs (Java, Maven, ClickHouse, PostgreSQL, Prometheus, Go), if missing
	bash scripts/install_system.sh

stack-up: ## Start Kafka, ClickHouse, PostgreSQL and Prometheus on loopback (idempotent, data in .stack/)
	$(STACK) up

stack-down: ## Stop the local stack (data is kept)
	$(STACK) down

stack-status: ## Show whether each stack component runs
	$(STACK) status

stack-reset: ## Stop the local stack and wipe its data (topics, tables, metrics)
	$(STACK) reset

protos: venv ## Regenerate the Python code for protos/ (into services/pcm/, committed)
	$(PY) scripts/gen_protos.py

protos-check: venv ## Fail when the committed generated code is stale against protos/
	$(PY) scripts/gen_protos.py --check

lint: venv ## ruff check and ruff format --check
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)

typecheck: venv ## mypy (strict) on the services and the stack script
	$(PY) -m mypy
	$(PY) -m mypy -p pcm_soak
	$(PY) -m mypy deploy/local/stack.py

schemas: $(COMPOSE_SCHEMA) ## Fetch the Compose Specification JSON schema (needs Go)

# From a temporary folder, so that no go.mod of ours is read or touched.
$(COMPOSE_SCHEMA): Makefile
	mkdir -p $(@D)
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	dir=$$(cd "$$tmp" && go mod download -json \
		github.com/compose-spec/compose-go/v2@$(COMPOSE_GO_VERSION) \
		| $(PYTHON3) -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'); \
	install -m 0644 "$$dir/schema/compose-spec.json" $@

tools: $(BUF) $(AXE) ## Install developer tools under .stack/tools (buf, axe-core)

$(BUF): Makefile
	mkdir -p .stack/tools
	npm install --prefix .stack/tools --no-audit --no-fund --loglevel=error \
		@bufbuild/buf@$(BUF_VERSION)
	touch $@

$(AXE): Makefile
	mkdir -p .stack/tools
	npm install --prefix .stack/tools --no-audit --no-fund --loglevel=error \
		axe-core@$(AXE_VERSION)
	touch $@

helm: $(HELM) ## Build helm into .stack/tools/bin with go install (skipped when present)

$(HELM):
	GOBIN=$(CURDIR)/.stack/tools/bin go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

test-unit: venv schemas tools helm ## Unit tests (no servers needed)
	$(PY) -m pytest $(PYTEST_FLAGS) tests/unit

test-integration: venv stack-up ## Integration tests against the local stack (starts it)
	$(PY) -m pytest $(PYTEST_FLAGS) tests/integration

test: install-system venv lint typecheck protos-check schemas tools helm stack-up ## Everything CI runs: lint, types, all tests on the local stack
	$(PY) -m pytest $(PYTEST_FLAGS) tests

# The abuse suite (tests/abuse) also runs in `make test`, with few examples per method (profile
# ci, reproducible); here with hundreds per method and new random ones each run.
abuse: venv stack-up ## Fuzz every gRPC method and dashboard route like an attacker (hypothesis, long)
	PCM_ABUSE_PROFILE=abuse $(PY) -m pytest $(PYTEST_FLAGS) --timeout=3600 tests/abuse

demo: install-system venv stack-up ## The main job: a month of national data through every service, the assessment, a national summary, the dashboard until Ctrl-C (DEMO_ARGS=--no-wait for scripts)
	$(PY) -m pcm_demo $(DEMO_ARGS)

# The baseline the bench table compares with: previous (the outputs a run replaces), pinned
# (bench/baseline.json) or the path of a baseline JSON file, e.g. `make bench BASELINE=pinned`.
BASELINE ?= previous

bench: venv stack-up ## Every benchmark, then one table against targets and baseline (bench/results/summary.{json,png})
	$(PY) bench/run.py --baseline $(BASELINE)

.PHONY: bench-report
bench-report: venv ## Rebuild the bench table, summary.json and summary.png from bench/results/*.txt (runs nothing)
	$(PY) bench/run.py --report-only --baseline $(BASELINE)

# On a stack and a platform of its own (every port +10000, data in .stack/soak), never the
# default ones; both stopped at the end. SOAK_ARGS=--short: the variant `make test` runs.
.PHONY: soak
soak: install-system venv ## Fault soak: load through every push service, 24 kill -9, a Kafka restart, ClickHouse down 60 s, PostgreSQL down 30 s; fails on anything lost, doubled or off
	PYTHONPATH=services $(PY) -m pcm_soak $(SOAK_ARGS)
