# colfill: `make demo` runs the main job on the embedded store (the Parquet lake); `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help install demo test bench lint services clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install colfill with its dev extras

demo: $(STAMP) ## generate sample flat files and backfill them into the lake in ./colfill-data
	$(BIN)/colfill demo

services: ## start PostgreSQL and Redis when none is reachable (installs redis-server if missing)
	bash scripts/services.sh

test: $(STAMP) services ## install, start services, run the test suite
	source .colfill-services.env && $(BIN)/pytest -q

bench: $(STAMP) services ## rows/s and peak memory per stage against same-run baselines
	source .colfill-services.env && $(BIN)/python benchmarks/bench.py

lint: $(STAMP) ## ruff and mypy
	$(BIN)/ruff check colfill tests benchmarks
	$(BIN)/mypy colfill

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) colfill-data .colfill-services.env
