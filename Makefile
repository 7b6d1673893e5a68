# Two entry points, both safe to re-run on a fresh machine:
#   make demo   - set everything up, then turn a sample picture into a sculpture and a mold
#   make test   - set everything up (venv, Kafka jars, glTF validator, slicer, kcat), run all tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-fast lint schemas docs bench clean

setup:
	bash scripts/bootstrap

demo: setup
	$(BIN)/sculpt demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -rs

test-fast: setup
	$(BIN)/python -m pytest -q -m "not kafka and not slow"

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

schemas:
	$(BIN)/python -m sculptsvc.schemas write
	$(BIN)/python -m sculptsvc.asyncapi write

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build tools/node_modules var
