# neuralops: `make demo` runs the main job end to end, `make test` runs every test.
# Both create the environment they need (.venv with torch, Lightning, PETSc/petsc4py, ...) and
# reuse it when it is there. `make env` does only that.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export OMP_NUM_THREADS ?= 2
# The allocator setting of datagen/allocator.py (default: glibc tuned against the page-fault storm;
# NEURALOPS_ALLOCATOR=system|tuned|jemalloc|tcmalloc to change) for every command below, the test
# process itself included (the CLIs would set it on their own, pytest would not).
WITH_ALLOCATOR = env $$($(PY) -m datagen.allocator)

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
	$(WITH_ALLOCATOR) $(PY) -m pytest -q

test-all: env
	$(WITH_ALLOCATOR) $(PY) -m pytest -q -m "slow or not slow"

demo: env
	@$(WITH_ALLOCATOR) bash scripts/demo.sh

bench: env
	$(WITH_ALLOCATOR) $(PY) benchmarks/datagen_skr.py
	$(WITH_ALLOCATOR) $(PY) benchmarks/datagen_ns.py
	$(WITH_ALLOCATOR) $(PY) benchmarks/models.py
	$(WITH_ALLOCATOR) $(PY) benchmarks/training.py
	$(WITH_ALLOCATOR) $(PY) benchmarks/darcy_scipy.py
	$(WITH_ALLOCATOR) $(PY) benchmarks/ns_dtype.py
	$(PY) benchmarks/allocator.py

clean-env:
	rm -rf $(VENV)
