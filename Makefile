# The README's commands. Each target creates .venv if it is missing and installs what it needs once.
# tools/cuda_extra.sh reads the NVIDIA driver's CUDA version from nvidia-smi and names the CuPy
# extra to add (cuda12, cuda13 or none), printing one line that says what it chose and why.
# .venv/.stamp-train and .venv/.stamp-test record the extras installed; they are installed again
# when that list changes (a new driver, DEVICE=cpu), when pyproject.toml is newer than the stamp,
# or when the chosen CuPy is missing.
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

.PHONY: help venv train test test-gpu gpu-report bench lint docs clean
# The stamps are files, but their recipes always run: the detection is quick, its line says which
# device the run will get, and the recipe itself decides whether anything needs installing.
.PHONY: $(VENV)/.stamp-train $(VENV)/.stamp-test $(VENV)/.stamp-docs

help:
	@echo "make train   - install (with the CuPy for this machine's NVIDIA driver, if any), fetch MNIST if missing, train on the best device (ARGS='--epochs 5 ...', DEVICE=cpu skips the GPU)"
	@echo "make test    - install the test extras (and the CuPy matching the driver; cupy-cuda12x without one) and run the tests (without a GPU the GPU suite runs on a strict CPU stand-in; real-GPU tests skip)"
	@echo "make test-gpu - run only the GPU tests (pytest -m gpu)"
	@echo "make gpu-report - on a GPU: parity, GPU benchmarks, time to 98%, peak memory, TF32 cost -> bench/results/ (~10 min, at most 20)"
	@echo "make bench   - run the benchmark suite and print the comparison table"
	@echo "make lint    - ruff"
	@echo "make docs    - build the documentation site into site/ (mkdocs build --strict)"
	@echo "make clean   - remove .venv and caches"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# $(call install,NAME,EXTRAS,CUDA_EXTRA_ARGS): pip install -e ".[EXTRAS,<CuPy extra>]" unless
# .venv/.stamp-NAME already records that list, is newer than pyproject.toml, and the chosen CuPy
# is installed (the other target may have swapped it). The other CuPy is removed first:
# cupy-cuda12x and cupy-cuda13x install the same `cupy` package over each other.
define install
	@cuda=$$(sh tools/cuda_extra.sh $(3)) || exit 1; \
	want="$(2)$${cuda:+,$$cuda}"; stamp="$(VENV)/.stamp-$(1)"; \
	if [ "$$(cat "$$stamp" 2>/dev/null)" != "$$want" ] || [ pyproject.toml -nt "$$stamp" ] || \
	   { [ -n "$$cuda" ] && ! $(PIP) show -q "cupy-$${cuda}x" >/dev/null 2>&1; }; then \
	  case "$$cuda" in cuda12) other=cupy-cuda13x ;; cuda13) other=cupy-cuda12x ;; *) other= ;; esac; \
	  if [ -n "$$other" ] && $(PIP) show -q "$$other" >/dev/null 2>&1; then \
	    echo "removing $$other: it and cupy-$${cuda}x would overwrite each other's files"; \
	    $(PIP) uninstall -q -y "$$other" || exit 1; \
	  fi; \
	  echo "pip install -e '.[$$want]'"; \
	  $(QUIET_EDITABLE) $(PIP) install -q -e ".[$$want]" || { \
	    echo "error: pip install -e '.[$$want]' failed; fix what pip says above$(if $(filter train,$(1)),$(COMMA) or pass DEVICE=cpu to install without CuPy)"; \
	    exit 1; }; \
	  $(if $(filter test,$(1)),$(INSTALL_TORCH)) \
	  echo "$$want" > "$$stamp"; \
	fi
endef
COMMA := ,
# setuptools prints an "Editable installation" banner on every editable install of a flat layout
# (it warns that a folder named like the package may shadow it: here that folder is the package).
QUIET_EDITABLE = PYTHONWARNINGS="$${PYTHONWARNINGS:+$$PYTHONWARNINGS,}ignore:Editable installation"
INSTALL_TORCH = if [ -n "$(TORCH)" ]; then $(PIP) install -q "$(TORCH)" || echo "warning: $(TORCH) did not install; the PyTorch oracle tests will skip"; fi;

$(VENV)/.stamp-train: | $(VENV)/bin/python
	$(call install,train,train,train $(DEVICE))

$(VENV)/.stamp-test: | $(VENV)/bin/python
	$(call install,test,test$(COMMA)train$(COMMA)lint,test)

# The site needs no CuPy: asked as for `make train DEVICE=cpu`, tools/cuda_extra.sh adds none
# (its line says "installing the CPU packages only"), whatever the driver.
$(VENV)/.stamp-docs: | $(VENV)/bin/python
	$(call install,docs,docs,train cpu)

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

# --strict: a broken link, a page missing from the nav or an API reference that does not
# resolve fails the build. NO_MKDOCS_2_WARNING silences Material's notice about MkDocs 2.0.
docs: $(VENV)/.stamp-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks .hypothesis build site *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
