# The README's commands. Everything installs into .venv; downloads are cached under ~/.cache.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STREAMS := $(BIN)/streams

.PHONY: install demo test faults unit lint stack-up stack-down bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'

demo: install
	$(BIN)/python -m streams.demo

# The fault suite kills servers under the others' feet: it runs on its own (`make faults`;
# STREAMS_FAULTS=full for the long version), after the rest.
test: install
	$(BIN)/python -m pytest tests -m "not faults"

faults: install
	$(BIN)/python -m pytest tests -m faults

unit: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check streams tests
	$(BIN)/mypy streams
	$(BIN)/hadolint Dockerfile

stack-up: install
	$(STREAMS) stack up

stack-down:
	$(STREAMS) stack down

bench: install
	$(STREAMS) bench --json bench-results/bench.json --plot bench-results/bench.png

clean: stack-down
	rm -rf .stack
