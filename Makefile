# reconcile — developer entry points. `make up` and `make test` are the README's quick start.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: up down status test bench lint clean ensure-docker

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml setup.py
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

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

test: $(STAMP) ensure-docker
	$(PY) -m pytest -q -p no:cacheprovider

# Benchmarks print their figures beside baselines measured in the same run; run them on a quiet machine.
bench: $(STAMP) ensure-docker
	bash bench/setup.sh
	$(PY) bench/api.py
	$(PY) bench/controllers.py
	$(PY) bench/scheduler.py
	$(PY) bench/runtime.py

lint: $(STAMP)
	$(VENV)/bin/ruff check reconcile tests bench

clean:
	rm -rf build dist *.egg-info .pytest_cache
