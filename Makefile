# Exhaust: every entry point. `make help` lists the targets; CI runs `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11+ is required)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with test and dev extras

# kustomize renders the Kubernetes overlays for the offline manifest checks (Go builds it from
# the module proxy; about 15 s the first time, cached after).
KUSTOMIZE := .tools/kustomize
KUSTOMIZE_VERSION := v5.7.1
$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "error: go not found (Go 1.22+ builds kustomize for the manifest checks)"; exit 2; }
	GOBIN=$(CURDIR)/.tools go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# The AsyncAPI parser (npm) validates docs/asyncapi.yaml in make test (about 10 s the first time).
ASYNCAPI := tools/asyncapi/node_modules/.installed-stamp
$(ASYNCAPI): tools/asyncapi/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (Node 20+ runs the AsyncAPI check)"; exit 2; }
	npm ci --prefix tools/asyncapi --no-audit --no-fund --loglevel=error
	@touch $(ASYNCAPI)

# Debian's Chromium, for the job console's browser test (Playwright drives it; it downloads no
# browser of its own). Installed with apt-get when missing (root; about a minute the first time).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "error: $(CHROMIUM) not found: install Debian's chromium package (the console's browser test drives it)"; exit 2; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }

k8s-check: $(STAMP) $(KUSTOMIZE) ## Render the Kubernetes overlays and check them against their schemas and the code
	$(PY) -m deploy.k8s.check

up: $(STAMP) ## Start the local Kafka and S3 servers (fetched on first use)
	$(PY) -m deploy.local.stack up

down: $(STAMP) ## Stop the local Kafka and S3 servers
	$(PY) -m deploy.local.stack down

reset: $(STAMP) ## Stop the local servers and delete their data (topics, buckets, logs); jars stay
	$(PY) -m deploy.local.stack reset

status: $(STAMP) ## Show whether the local servers are up and ready
	$(PY) -m deploy.local.stack status

run: $(STAMP) ## Start the stack and one worker in the foreground; Ctrl-C stops all it started
	$(PY) -m deploy.local.stack run -- $(PY) -m app worker

demo: $(STAMP) ## Fill the sample datasets of every profile into the worker `make run` started
	$(VENV)/bin/exhaust demo-data

lint: $(STAMP) ## ruff check and format check; hadolint on the Dockerfile
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint Dockerfile

typecheck: $(STAMP) ## mypy --strict
	$(VENV)/bin/mypy

# The tests run in TEST_PROCESSES processes (pytest-xdist), each with its own Kafka and S3
# server, a module at a time (modules share fixtures); the cluster's scenarios run after them,
# alone: they keep both cores busy. 17 min 58 s to 21 min 12 s in all from a fresh clone on this
# 2-core machine (2026-12-07; 22 min 55 s in one process without the cluster's scenarios).
TEST_PROCESSES ?= 2
test: $(STAMP) $(KUSTOMIZE) $(ASYNCAPI) $(CHROMIUM) lint typecheck ## Lint, type-check, run every test (each starts and stops its own stack), then the cluster's scenarios (root)
	$(VENV)/bin/pytest -q -m "not cluster" -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -m cluster $(PYTEST_ARGS)

cluster-test: $(STAMP) ## The multi-host cluster's scenario tests alone (root; about 3.5 minutes)
	$(VENV)/bin/pytest -q -m cluster $(PYTEST_ARGS)

unit: $(STAMP) $(KUSTOMIZE) $(ASYNCAPI) ## Unit tests only (no broker)
	$(VENV)/bin/pytest -q tests/unit $(PYTEST_ARGS)

bench: $(STAMP) ## Run the pipeline, status-read, fill and export benchmarks against the local stack
	$(PY) -m deploy.local.stack run -- $(PY) -m bench.pipeline
	$(PY) -m deploy.local.stack run -- $(PY) -m bench.reads
	$(PY) -m deploy.local.stack run -- $(PY) -m bench.fill
	$(PY) -m deploy.local.stack run -- $(PY) -m bench.export

SOAK_RUNS ?= 20
soak-kill: $(STAMP) ## The kill -9 and lost-work-item tests 20 times each (SOAK_RUNS=n), stop at the first failure
	$(VENV)/bin/pytest -q --count=$(SOAK_RUNS) -x \
		tests/integration/test_pipeline.py::test_kill_9_during_generation_every_job_still_succeeds_once \
		tests/integration/test_faults.py::test_a_lost_work_item_is_dispatched_again_and_the_job_succeeds \
		$(PYTEST_ARGS)

# The multi-host cluster: network namespaces on a private bridge (root and iproute2 needed).
cluster-up: $(STAMP) ## Start a 3-broker cluster, an object store and 4 worker hosts in network namespaces
	$(PY) -m deploy.local.cluster up

cluster-down: $(STAMP) ## Stop the cluster and remove its namespaces (also what a crashed run left)
	$(PY) -m deploy.local.cluster down

CHAOS_SEEDS ?= 1,2,3
CHAOS_RATE ?= 20
chaos: $(STAMP) ## Every fault scenario on a fresh cluster, then a seeded mix per seed (CHAOS_SEEDS=1,2,3, CHAOS_RATE=20 requests/s)
	$(PY) -m deploy.local.cluster chaos --seeds $(CHAOS_SEEDS) --rate $(CHAOS_RATE)

SOAK_REQUESTS ?= 500000
SOAK_RATE ?= 60
soak: $(STAMP) ## SOAK_REQUESTS requests through the cluster, memory of every process sampled and held flat
	$(PY) -m deploy.local.cluster soak --requests $(SOAK_REQUESTS) --rate $(SOAK_RATE)

clean: ## Remove the venv, caches and local stack data (keeps fetched jars in .cache)
	-$(PY) -m deploy.local.cluster down 2>/dev/null
	rm -rf $(VENV) .stack .stack-test .stack-test-[0-9]* .stack-test-secure .cluster .tools .state .mypy_cache .ruff_cache .pytest_cache

.PHONY: help install k8s-check up down reset status run lint typecheck test unit bench soak-kill cluster-up cluster-down cluster-test chaos soak clean
