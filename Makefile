# SuperMega Bank Customer Account API: the project's command surface.
# `make help` lists every target; each one says what it needs.

SHELL       := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

PY_SOURCES := app testing

.PHONY: help
help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the controller's system packages (apt, needs root)
	bash scripts/install-host-deps.sh

$(BIN)/activate: requirements-dev.lock requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

.PHONY: venv
venv: $(BIN)/activate ## Create the project venv (.venv) from requirements-dev.lock

.PHONY: lock
lock: venv ## Re-resolve requirements*.txt into the lock files (hash-locked runtime set)
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-header \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock requirements.txt
	$(BIN)/pip-compile --quiet --strip-extras --allow-unsafe --no-header \
	  --no-emit-index-url --no-emit-find-links --output-file requirements-dev.lock requirements-dev.txt

.PHONY: run
run: venv ## Run the app as supplied: Flask's server on 0.0.0.0:5000 (debug off)
	$(BIN)/python app/app.py

.PHONY: lint
lint: venv ## Static checks: ruff, yamllint
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/yamllint --strict .

.PHONY: unit
unit: venv ## The supplied unittest file, then the pytest suite (in-process and local servers)
	$(BIN)/python testing/testing.py
	$(BIN)/python -m pytest -q testing

.PHONY: test
test: lint unit ## Everything CI runs: lint, unit tests
