# storyline: `make demo` sets everything up and runs the demo; `make test` runs the tests.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup demo test test-all lint bench gpu-check clean

setup: $(STAMP)

# torch/torchvision are pinned (pyproject.toml); pip takes them from this machine's disk.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/storyline demo --out demo-out

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/bench_extract.py

# one JSON object: bf16 vs fp32 encoder, CUDA memory, TransNetV2, a fractional-GPU Ray job
gpu-check: setup
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf demo-out bench/out .pytest_cache
