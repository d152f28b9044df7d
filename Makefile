# Everything a fresh machine needs is installed from here: nothing by hand.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
RUN ?= runs/demo

.PHONY: install system-deps demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@# The CPU wheel lies on disk here; on a GPU machine install a CUDA torch first (see README).
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,tensorboard]'
	@touch $(STAMP)

install: $(STAMP)

# Optional system packages: the full Fashion-MNIST and Chromium (report rendering test).
# Best effort: without root or apt the demo uses the embedded data and the browser test skips.
system-deps:
	@if [ ! -f $(FMNIST) ] || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist chromium >/dev/null) \
	      || echo "note: apt-get could not install dataset-fashion-mnist/chromium; continuing without them"; \
	  else echo "note: not root or no apt-get: skipping dataset-fashion-mnist and chromium"; fi; \
	fi

demo: install system-deps
	$(PY) -m vaemsgan demo --out $(RUN) --force

test: install system-deps
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

bench: install system-deps
	$(PY) benchmarks/run_all.py

clean:
	rm -rf runs .pytest_cache build
