# reconcile — developer entry points. `make up` and `make test` are the README's quick start.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Every package of the runtime and test dependency tree at the version the suite passed with
# (Python 3.11, Linux): .venv is installed with it as constraints, so CI and a newcomer get exactly
# those. pyproject.toml keeps the ranges a library user installs from.
LOCK := requirements.lock
# `make lock` runs uv from a venv of its own (inside .venv, so git ignores it), at a fixed release,
# so the lock does not depend on whichever uv a developer has.
TOOLS := $(VENV)/.tools
UV_VERSION := 0.13.9
UV := $(TOOLS)/bin/uv
LOCK_COMMAND := $(UV) pip compile pyproject.toml --extra test --python-version 3.11 --python-platform linux \
	--custom-compile-command 'make lock' --quiet --output-file $(LOCK)

.PHONY: up down status install test bench lint lock lock-upgrade clean ensure-docker

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml setup.py $(LOCK)
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	touch $(STAMP)

# the lock-pinned .venv alone (what `make test` and .ci/run install)
install: $(STAMP)

# a Docker engine must answer (installed and started in the background when missing)
ensure-docker:
	bash scripts/ensure-docker.sh

up: $(STAMP) ensure-docker
	$(VENV)/bin/reconcile up
	$(VENV)/bin/reconcile apply -f examples/hello/
	$(VENV)/bin/reconcile status

down: $(STAMP)
	$(VENV)/bin/reconcile down

status: $(STAMP)
	$(VENV)/bin/reconcile status

# the whole suite, as CI runs it (scripts/test.sh: a missing prerequisite fails, skip reasons and
# the slowest tests printed before pytest's summary line); pass pytest arguments as ARGS="..."
test: $(STAMP) ensure-docker
	VENV=$(VENV) bash scripts/test.sh $(ARGS)

# Benchmarks print their figures beside baselines measured in the same run; run them on a quiet machine.
bench: $(STAMP) ensure-docker
	bash bench/setup.sh
	$(PY) bench/api.py
	$(PY) bench/secured.py
	$(PY) bench/controllers.py
	$(PY) bench/scheduler.py
	$(PY) bench/runtime.py
	$(PY) bench/cluster_dns.py
	$(PY) bench/charts.py
	$(PY) bench/streaming.py
	$(PY) bench/services.py
	$(PY) bench/proxy_sync.py
	$(PY) bench/service_traffic.py
	$(PY) bench/ssa.py
	$(PY) bench/gitops.py
	$(PY) bench/storage.py

lint: $(STAMP)
	$(VENV)/bin/ruff check reconcile tests bench

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

# Re-resolve the lock after a change to pyproject.toml's dependencies: pins already in the lock
# stay where the ranges still allow them. Run `make test` before committing the new lock.
lock: $(UV)
	$(LOCK_COMMAND)

# Move every pin to the newest release pyproject.toml allows (then `make test`, then commit).
lock-upgrade: $(UV)
	$(LOCK_COMMAND) --upgrade

clean:
	rm -rf build dist *.egg-info .pytest_cache
