# The commands a new user runs. `make demo` runs the whole pipeline once on embedded defaults;
# `make test` runs the suite (CI runs exactly `make test` through .ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test lint ui chaos bench venv browser postgres instance clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

browser: venv
	@bash scripts/ensure_browser.sh

postgres:
	@bash scripts/ensure_postgres.sh

# The Dagster instance reads $(DAGSTER_HOME)/dagster.yaml: start from the project's (telemetry off, run queue).
instance:
	@mkdir -p $(DAGSTER_HOME) && { [ -f $(DAGSTER_HOME)/dagster.yaml ] || cp dagster.yaml $(DAGSTER_HOME)/; }

demo: venv browser instance
	$(BIN)/pipeline demo

lint: venv
	$(BIN)/ruff check .

test: venv browser postgres instance lint
	$(BIN)/pytest -q

ui: venv browser instance
	bash scripts/ui.sh

chaos: venv browser postgres
	$(BIN)/python bench/chaos.py --posts 200 --seed 7 --json bench/results/chaos.json --check

bench: venv browser postgres
	bash scripts/bench_all.sh

clean:
	rm -rf .pipeline .dagster_home tests/artifacts
