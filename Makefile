# Two commands for a fresh machine with Python 3.11 and make:
#   make run    start the embedded platform (Prefect server, worker, watcher, demo)
#   make test   run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run run-prod test bench bench-watcher bench-campaign bench-signals clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/regflow up

# Production mode on this machine: PostgreSQL, API auth, two workers, two watchers.
run-prod: $(STAMP)
	$(VENV)/bin/regflow up --prod --replicas 2

# ruff first (lint and format, configured in pyproject.toml: seconds), then two pytest
# workers, whole files each (module fixtures stay together): the end-to-end tests
# mostly wait on flow-run processes, so two cores overlap them.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile --durations=15

clean:
	rm -rf $(VENV) .regflow

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(VENV)/bin/pip install --quiet -r requirements-bench.lock
	touch $(BENCH_STAMP)

# Trigger-to-dispatch latency, a 100-incident burst and 10,000 waiting incidents,
# against plain Prefect in the same run (README, Performance).
bench: $(BENCH_STAMP)
	$(VENV)/bin/python -m benchmarks.dispatch

# The deadline watcher against a naive full scan.
bench-watcher: $(STAMP)
	$(VENV)/bin/python -m benchmarks.watcher

# A spot-check draw from 100,000 targets and a campaign of 1,000 samples.
bench-campaign: $(STAMP)
	$(VENV)/bin/python -m benchmarks.campaign

bench-signals: $(STAMP)
	$(VENV)/bin/python -m benchmarks.signals
