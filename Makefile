# Two commands for a fresh machine with Python 3.11 and make:
#   make run    start the embedded platform (Prefect server, worker, watcher, demo)
#   make test   run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run run-prod test check-runtime lock bench bench-watcher bench-campaign bench-signals clean

# The development and test venv: the runtime lock (runtime and prod extra) and the test
# lock (the test extra, consistent with it), every file checked against its hash; then
# the project itself, editable, with nothing more (README, Dependencies).
$(STAMP): requirements.lock requirements-test.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements.lock -r requirements-test.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	$(VENV)/bin/pip check
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

# A production install on its own: a new venv from the runtime lock alone (no test tools),
# the package built and installed as a wheel without its dependencies, `pip check`, then
# every module of every packaged package imported from a directory outside the source
# tree (-P: not on sys.path either). The plans and authorities, which flows/params.py reads
# at import, are configuration outside the package: they come from this checkout's data/.
RUNTIME_VENV := .venv-runtime

check-runtime:
	rm -rf $(RUNTIME_VENV)
	$(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/pip install --quiet --upgrade pip
	$(RUNTIME_VENV)/bin/pip install --quiet --require-hashes -r requirements.lock
	$(RUNTIME_VENV)/bin/pip install --quiet --no-deps .
	rm -rf build
	$(RUNTIME_VENV)/bin/pip check
	away=$$(mktemp -d) && cd $$away && REGFLOW_HOME=$$away/home REGFLOW_PLANS_DIR=$(CURDIR)/data/plans \
	  REGFLOW_AUTHORITIES_FILE=$(CURDIR)/data/authorities.yaml $(CURDIR)/$(RUNTIME_VENV)/bin/python -P -m regflow.imports_check; \
	  status=$$?; rm -rf $$away; exit $$status

# Rewrite both locks from pyproject.toml with pip-tools (in a venv of its own, never in
# .venv): versions already locked stay unless LOCK_ARGS says otherwise, e.g.
#   make lock LOCK_ARGS="--upgrade-package httpx"      or      make lock LOCK_ARGS=--upgrade
LOCK_VENV := .venv-lock
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_ARGS)

$(LOCK_VENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet pip==26.3 pip-tools==7.7.0

lock: $(LOCK_VENV)/bin/pip-compile
	$(PIP_COMPILE) --extra prod --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra prod --extra test --constraint requirements.lock --output-file requirements-test.lock pyproject.toml

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) $(LOCK_VENV) .regflow

# Trigger-to-dispatch latency, a 100-incident burst and 10,000 waiting incidents,
# against plain Prefect in the same run (README, Performance); matplotlib, for its
# plot, is a runtime dependency.
bench: $(STAMP)
	$(VENV)/bin/python -m benchmarks.dispatch

# The deadline watcher against a naive full scan.
bench-watcher: $(STAMP)
	$(VENV)/bin/python -m benchmarks.watcher

# A spot-check draw from 100,000 targets and a campaign of 1,000 samples.
bench-campaign: $(STAMP)
	$(VENV)/bin/python -m benchmarks.campaign

bench-signals: $(STAMP)
	$(VENV)/bin/python -m benchmarks.signals
