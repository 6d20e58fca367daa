# Self-documenting: `make` (or `make help`) lists every target with its `## description`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the venv is rebuilt when the dependencies change
INSTALLED := $(VENV)/.installed
DEMAND := $(BIN)/demand
ARGS ?=

.PHONY: help install java chromium demo test test-fast fuzz lint format features generate validate build-features apply examples \
        materialize online feast train models promote-staging promote rollback serve bento \
        config docs-config docs docs-serve graphviz monitor report bench-monitor \
        bench-features bench-build bench-spark bench-train bench-quality bench-batch bench-serve bench-nightly bench-scale lock clean import nightly forecast team-up team-down team-status ui \
        container-tools base-image container container-smoke bench-container serving-requirements

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(INSTALLED): pyproject.toml requirements.lock
	@echo "› installing into $(VENV) (pinned by requirements.lock)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

install: $(INSTALLED) ## Create or refresh the virtual environment in .venv

demo: $(INSTALLED) ## Run the platform end to end on generated data (embedded profile, no servers)
	$(DEMAND) demo $(ARGS)

team-up: $(INSTALLED) ## Team profile: check PostgreSQL and Redis, create databases, start the MLflow tracking server
	DEMAND_PROFILE=team $(DEMAND) team up

team-down: $(INSTALLED) ## Team profile: stop the MLflow tracking server team-up started
	DEMAND_PROFILE=team $(DEMAND) team down

team-status: $(INSTALLED) ## Team profile: which servers answer, and where each thing lives
	DEMAND_PROFILE=team $(DEMAND) team status

java: ## Install a Java runtime (Debian's openjdk-17-jre-headless) when there is none: DEMAND_ENGINE=spark needs one
	@java -version >/dev/null 2>&1 || { \
	  echo "› installing openjdk-17-jre-headless (Spark runs on Java)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null; }

chromium: ## Install a headless browser (Debian's chromium) when there is none: the tests open pages people look at in it
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "› installing chromium (the report and docs pages are checked in a real browser)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(INSTALLED) java chromium graphviz ## Run the whole test suite (what CI runs)
	$(BIN)/pytest $(ARGS)

# unit and small integration tests: no Spark, image, nightly, fuzzing or end-to-end run,
# nothing marked slow (pyproject.toml's markers); for the edit loop
FAST := not (slow or spark or container or nightly or fuzz or e2e)
test-fast: $(INSTALLED) chromium graphviz ## Run the fast tier: unit and small integration tests (under 3 minutes)
	$(BIN)/pytest -m "$(FAST)" $(ARGS)

config: $(INSTALLED) ## Print every setting's effective value (passwords hidden) and where it came from
	$(DEMAND) config

docs-config: $(INSTALLED) ## Rewrite the generated reference pages (docs/reference/: CLI, settings, HTTP API, raw data, features) and the diagram
	$(BIN)/python -m cli.reference

graphviz: ## Install graphviz (Debian's) when `dot` is missing: it renders the architecture diagram
	@command -v dot >/dev/null || { \
	  echo "› installing graphviz (the architecture diagram)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq graphviz >/dev/null; }

# strict (mkdocs.yml): a broken link or anchor, or a page on disk missing from the nav, fails
docs: $(INSTALLED) graphviz ## Build the docs site into build/site (references regenerated first; strict)
	$(BIN)/python -m cli.reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(INSTALLED) graphviz ## Serve the docs site at http://127.0.0.1:8000, rebuilt on every edit (ARGS="-a 0.0.0.0:8000")
	$(BIN)/python -m cli.reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve $(ARGS)

# make fuzz: the tests that use the fuzzer fixture (tests/fuzzing.py), freshly seeded
FUZZ_SECONDS ?= 600
SEED ?=
fuzz: $(INSTALLED) ## Fuzz the service for FUZZ_SECONDS (600): schemathesis and the property-based tests, fresh seeds, each printed (replay: make fuzz SEED=… FUZZ_SECONDS=0)
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(SEED) $(BIN)/pytest -m fuzz -p no:cacheprovider \
	  --timeout=$$(( $(FUZZ_SECONDS) + 900 )) $(ARGS)

lint: $(INSTALLED) ## Check formatting and lint with ruff, and the layers between packages (lint-imports)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(INSTALLED) ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

features: $(INSTALLED) ## Generate data, build features, feast apply, materialize
	$(DEMAND) features $(ARGS)

generate: $(INSTALLED) ## Generate the synthetic retailer's raw tables (DEMAND_SCALE=tiny|default|large)
	$(DEMAND) generate $(ARGS)

import: $(INSTALLED) ## Import a retailer's files from a folder (make import DIR=shop ARGS="--grain week --delimiter ';'")
	@test -n "$(DIR)" || { echo "usage: make import DIR=folder [ARGS=...]"; exit 2; }
	$(DEMAND) import "$(DIR)" $(ARGS)

examples: $(INSTALLED) ## Rewrite the example retailer exports in examples/ (weekly, daily, realistic)
	$(BIN)/python examples/generate.py

validate: $(INSTALLED) ## Check the raw tables against the data contract
	$(DEMAND) validate

build-features: $(INSTALLED) ## Build the offline feature tables from the raw tables
	$(DEMAND) build-features

apply: $(INSTALLED) ## Register the feature definitions with Feast
	$(DEMAND) apply

materialize: $(INSTALLED) ## Load the online store (ARGS=--incremental for new rows only)
	$(DEMAND) materialize $(ARGS)

online: $(INSTALLED) ## Print online feature vectors (ARGS="-k S000:P0300")
	$(DEMAND) online $(ARGS)

train: $(INSTALLED) ## Train, backtest and register a model (ARGS="--device gpu", "--horizon 5")
	$(DEMAND) train $(ARGS)

models: $(INSTALLED) ## List model versions with stage, backtest WAPE, feature service and last move
	$(DEMAND) models list $(ARGS)

promote-staging: $(INSTALLED) ## Promote VERSION to staging through its gates (make promote-staging VERSION=3)
	$(DEMAND) models promote $(VERSION) --to staging $(ARGS)

promote: $(INSTALLED) ## Promote VERSION to production through its gates (make promote VERSION=3)
	$(DEMAND) models promote $(VERSION) --to production $(ARGS)

rollback: $(INSTALLED) ## Put the previous production version back (make rollback REASON="…")
	$(DEMAND) models rollback --reason "$(REASON)"

nightly: $(INSTALLED) ## The nightly cycle: new data → features → train → gates → services → forecasts (ARGS="--append-days 1 --promote")
	$(DEMAND) nightly $(ARGS)

forecast: $(INSTALLED) ## Publish every store × product's forecasts for the next days (parquet; PostgreSQL in the team profile)
	$(DEMAND) forecast --all $(ARGS)

monitor: $(INSTALLED) ## Score published forecasts against actuals, measure feature and prediction drift; exits 1 on an alert
	$(DEMAND) monitor $(ARGS)

report: $(INSTALLED) ## Write the monitoring report (one HTML page with its plots), logged to the version's MLflow run
	$(DEMAND) report $(ARGS)

serve: $(INSTALLED) ## Serve forecasts for the production model over HTTP (ARGS="--port 3000 --alias production")
	$(DEMAND) serve $(ARGS)

bento: $(INSTALLED) ## Build a Bento with the service, the production model and the feature repo config
	$(DEMAND) bento build $(ARGS)

# Containers (README, Deploy as a container). buildah builds and podman runs here: these
# machines have no Docker daemon; ARGS="--backend docker" where one answers.
BASE_IMAGE ?= localhost/demand-base:bookworm
CONTAINER_TOOLS := buildah podman runc debootstrap

container-tools: ## Install buildah, podman, runc and debootstrap when one is missing (apt-get, as root)
	@for tool in $(CONTAINER_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "› installing $(CONTAINER_TOOLS)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CONTAINER_TOOLS); \
	fi

base-image: $(INSTALLED) container-tools ## Build the Bento's base image BASE_IMAGE from Debian bookworm (debootstrap, no Docker Hub)
	$(DEMAND) bento base-image --name $(BASE_IMAGE) $(ARGS)

container: $(INSTALLED) container-tools ## Build the production Bento's OCI image (buildah, on BASE_IMAGE, built if missing)
	$(DEMAND) bento base-image --name $(BASE_IMAGE) --if-missing
	DEMAND_CONTAINER_BASE_IMAGE=$(BASE_IMAGE) $(DEMAND) bento containerize --backend buildah $(ARGS)

container-smoke: $(INSTALLED) container-tools ## Build the image, serve it against the team and embedded profiles, compare with bentoml serve
	$(DEMAND) bento base-image --name $(BASE_IMAGE) --if-missing
	$(BIN)/python -m deploy.smoke --base-image $(BASE_IMAGE) $(ARGS)

serving-requirements: $(INSTALLED) ## Rewrite deploy/requirements.txt (the image's packages) from requirements.lock
	$(BIN)/python -m deploy.requirements

feast: $(INSTALLED) ## Run the feast CLI on the profile's feature repo and registry (ARGS="feature-views list")
	$(DEMAND) feast $(ARGS)

ui: $(INSTALLED) ## Start the MLflow UI and the Feast UI, print both addresses; Ctrl-C stops them (ARGS="--feast-port 8889")
	$(DEMAND) ui $(ARGS)

bench-features: $(INSTALLED) ## Benchmark import (ARGS=--only-import), feature build, retrieval and materialization on the large scale
	$(BIN)/python -m benchmarks.features $(ARGS)

.PHONY: bench-materialization
bench-build: $(INSTALLED) ## Benchmark the feature build at M5 width: full under each memory limit, then incremental (+1 day) against full (ARGS="--stores 10 --products 3049")
	$(BIN)/python -m benchmarks.feature_build $(ARGS)

bench-spark: $(INSTALLED) java ## Benchmark the feature build on Spark local[1] and local[2] against DuckDB, M5 width (ARGS="--stores 10 --products 300")
	$(BIN)/python -m benchmarks.spark $(ARGS)

bench-materialization: $(INSTALLED) ## Benchmark materialization at 1 M keys, stock Feast vs the platform, SQLite and Redis (ARGS="--keys 200000")
	$(BIN)/python -m benchmarks.materialization $(ARGS)

bench-train: $(INSTALLED) ## Benchmark training-set build and CatBoost fit (default, large; ARGS=--compare-losses)
	$(BIN)/python -m benchmarks.train $(ARGS)

bench-quality: $(INSTALLED) ## Benchmark the model against every baseline: validation and backtest WAPE, the improvement, training time and memory (ARGS="--data realistic --scale bench", "--target-scale none")
	$(BIN)/python -m benchmarks.quality $(ARGS)

bench-batch: $(INSTALLED) ## Benchmark sampled training and the batch forecasts at M5 width (30,000 series; ARGS="--series 2000")
	$(BIN)/python -m benchmarks.batch $(ARGS)

bench-monitor: $(INSTALLED) ## Benchmark one night's monitoring (ledger, accuracy, drift, report) at M5 width: 30,000 series, 28 days ahead (ARGS="--series 2000")
	$(BIN)/python -m benchmarks.monitor $(ARGS)

bench-serve: $(INSTALLED) ## Benchmark /forecast against feast serve and mlflow models serve
	$(BIN)/python -m benchmarks.serve $(ARGS)

bench-nightly: $(INSTALLED) ## Benchmark the nightly cycle per step: a first night, then nights of one new day (ARGS="--scale default")
	$(BIN)/python -m benchmarks.nightly $(ARGS)

bench-scale: $(INSTALLED) ## Benchmark the nightly cycle on the M5-sized retailer: the first night, then one new day (time and peak memory per step)
	$(BIN)/python -m benchmarks.nightly --scale m5 --nights 1 $(ARGS)

bench-container: $(INSTALLED) container-tools ## Benchmark /forecast inside the service image against bentoml serve outside it
	$(DEMAND) bento base-image --name $(BASE_IMAGE) --if-missing
	$(BIN)/python -m benchmarks.container --base-image $(BASE_IMAGE) $(ARGS)

lock: ## Re-resolve requirements.lock from pyproject.toml
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv; }
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	@echo "› then: make serving-requirements (the image's part of the lock)"

clean: ## Remove generated data (DEMAND_DATA_DIR) and caches, keep .venv
	rm -rf data .pytest_cache .ruff_cache
