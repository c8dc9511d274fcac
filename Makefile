# neuralops: `make demo` runs the main job end to end, `make test` runs every test.
# Both create the environment they need (.venv with torch, Lightning, PETSc/petsc4py, ...) and
# reuse it when it is there. `make env` does only that.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2

.PHONY: env test test-all demo bench clean-env help

help:
	@echo "make demo      generate a Darcy dataset with SKR, train MgNO, evaluate, write a report"
	@echo "make test      run the test suite (creates the environment on first use)"
	@echo "make test-all  also run the slow end-to-end tests"
	@echo "make bench     run the benchmarks in benchmarks/ (minutes)"
	@echo "make env       only create/refresh the environment"

env:
	@bash scripts/setup_env.sh

test: env
	$(PY) -m pytest -q

test-all: env
	$(PY) -m pytest -q -m "slow or not slow"

demo: env
	@bash scripts/demo.sh

bench: env
	$(PY) benchmarks/datagen_skr.py
	$(PY) benchmarks/datagen_ns.py
	$(PY) benchmarks/models.py
	$(PY) benchmarks/training.py

clean-env:
	rm -rf $(VENV)
