# The README's two commands: `make run` and `make test`. Each works alone on a fresh clone.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test fuzz lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## serve on ./data/hotspot-webhooks.db with local-development defaults
	$(BIN)/hotspot-webhooks serve --dev

test: $(STAMP)  ## the whole test suite, two files at a time (most tests wait on I/O)
	$(BIN)/pytest -n 2 --dist loadfile

fuzz: $(STAMP)  ## the REST API fuzzed from its OpenAPI schema: 10,000+ requests on SQLite and on PostgreSQL each
	HW_FUZZ_EXAMPLES=250 HW_FUZZ_MIN_REQUESTS=10000 HW_FUZZ_TIMEOUT=1800 \
	HW_FUZZ_PHASES_ON_POSTGRESQL=examples,coverage,fuzzing,stateful HW_TEST_POSTGRES=required \
	$(BIN)/pytest -s -q tests/test_api_fuzz.py

lint: $(STAMP)  ## ruff (checks and formatting), mypy --strict and the layering contracts (docs/architecture.md)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)  ## delivery and ingest throughput, each against a bare baseline
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
