# Two entry points, both safe to re-run on a fresh machine:
#   make demo   - set everything up, then turn a sample picture into a sculpture and a mold
#   make test   - set everything up (venv, Kafka jars, glTF validator, slicer, kcat), run all tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast lint schemas docs docker-lock bench bench-gpu clean

setup:
	bash scripts/bootstrap

demo: setup
	$(BIN)/sculpt demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs

test-fast: setup
	$(BIN)/python -m pytest -q -m "not kafka and not s3 and not slow"

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

schemas:
	$(BIN)/python -m sculptsvc.schemas write
	$(BIN)/python -m sculptsvc.asyncapi write

# Configuration reference in docs/operations.md, generated from sculptsvc/settings.py.
docs:
	$(BIN)/python -m sculptsvc.docs

# Hashed dependency locks of the container images (linux/amd64, Debian bookworm's glibc 2.36;
# pymeshlab ships manylinux_2_35 wheels only). Re-run after changing dependencies.
LOCK := $(BIN)/uv pip compile pyproject.toml --override requirements/overrides.txt \
	--python-version 3.11 --python-platform x86_64-manylinux_2_36 --generate-hashes \
	--quiet --custom-compile-command "make docker-lock"
docker-lock:
	$(LOCK) -o docker/requirements-cpu.txt
	$(LOCK) --extra ai -o docker/requirements-cuda.txt

bench: setup
	$(BIN)/python -m bench

# Full-size random models on a CUDA GPU (one table, < 8 min on an H100); reduced sizes on CPU.
bench-gpu: setup
	$(BIN)/python -m bench gpu

clean:
	rm -rf $(VENV) build tools/node_modules var
