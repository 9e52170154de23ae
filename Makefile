# `make demo` shows the package working (one-shot), `make test` runs its tests, `make up` starts a
# local Airflow (CeleryExecutor, 127.0.0.1) with the demo data and prints its URL and login,
# `make down` stops it. All do their own set-up (scripts/setup.sh) and are quick the second time.

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)

.PHONY: setup demo test bench up down

setup:
	@bash scripts/setup.sh

demo: setup
	@.venv/bin/python -m datasync demo

test: setup
	@.venv/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	@.venv/bin/python bench/run.py

up: setup
	@.venv/bin/python scripts/airflow_stack.py up

down:
	@.venv/bin/python scripts/airflow_stack.py down
