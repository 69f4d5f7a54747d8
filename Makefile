# Every target installs what it needs first, so `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.ppgen-installed
# One thread each: on small shared machines torch's thread pool slows everything down.
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: install demo test test-slow lint format bench tutorials clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# A bare `torch` requirement pulls a multi-GB CUDA build: tools/install_torch.py picks a CPU
	# build where no GPU is present (local wheels first), keeping any torch already installed.
	$(PY) tools/install_torch.py
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ppgen demo --output out/demo

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check ppgen tests benchmarks tutorials tools
	$(VENV)/bin/ruff format --check ppgen tests benchmarks tutorials tools

format: $(STAMP)
	$(VENV)/bin/ruff check --fix ppgen tests benchmarks tutorials
	$(VENV)/bin/ruff format ppgen tests benchmarks tutorials

tutorials: $(STAMP)
	$(PY) -m pytest tests/test_tutorials.py -q

bench: $(STAMP)
	$(PY) benchmarks/gmm_vs_sklearn.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
