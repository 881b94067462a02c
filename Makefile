# The README's commands. Each target creates .venv if it is missing and installs what it needs once
# (a stamp file per extra, renewed when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# PyTorch is the gradient oracle in the tests and the peer in the benchmarks. 2.13.0 is the CPU build
# these machines install offline; `make test TORCH=` skips it (the oracle tests then skip, saying why).
TORCH  ?= torch==2.13.0
DEVICE ?= auto
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: help venv train test test-gpu gpu-report bench lint clean

help:
	@echo "make train   - install, fetch MNIST if missing, train on the best device (ARGS='--epochs 5 ...')"
	@echo "make test    - install the test extras and run the tests (without a GPU the GPU suite runs on a strict CPU stand-in; real-GPU tests skip)"
	@echo "make test-gpu - run only the GPU tests (pytest -m gpu)"
	@echo "make gpu-report - on a GPU: parity, GPU benchmarks, time to 98%, peak memory, TF32 cost -> bench/results/ (~10 min, at most 20)"
	@echo "make bench   - run the benchmark suite and print the comparison table"
	@echo "make lint    - ruff"
	@echo "make clean   - remove .venv and caches"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.stamp-train: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e ".[train]"
	@touch $@

$(VENV)/.stamp-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e ".[test,train,lint]"
	@if [ -n "$(TORCH)" ]; then $(PIP) install -q "$(TORCH)" || echo "warning: $(TORCH) did not install; the PyTorch oracle tests will skip"; fi
	@touch $@

venv: $(VENV)/.stamp-test

train: $(VENV)/.stamp-train
	$(PY) -m xpnet.train --device $(DEVICE) $(ARGS)

test: $(VENV)/.stamp-test
	$(PY) -m pytest $(PYTEST_ARGS)

test-gpu: $(VENV)/.stamp-test
	$(PY) -m pytest -m gpu tests/gpu $(PYTEST_ARGS)

gpu-report: $(VENV)/.stamp-test
	$(PY) bench/gpu_report.py

bench: $(VENV)/.stamp-test
	$(PY) bench/run.py

lint: $(VENV)/.stamp-test
	$(PY) -m ruff check xpnet tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
