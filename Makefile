# `make demo` shows the package working (one-shot), `make test` runs its tests, `make up` starts a
# local Airflow (CeleryExecutor, 127.0.0.1) with the demo data and prints its URL and login,
# `make down` stops it. `make bench` runs the benchmarks and prints one table of their results
# (narrow it with BENCH_ARGS="--rows 100000 --only engine"; see bench/run.py --help).
# All do their own set-up (scripts/setup.sh) and are quick the second time.

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
	@.venv/bin/python bench/run.py $(BENCH_ARGS)

up: setup
	@.venv/bin/python scripts/airflow_stack.py up

down:
	@.venv/bin/python scripts/airflow_stack.py down
