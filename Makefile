# modelgate — `make demo` serves the example config offline; `make test` runs every check and the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo run test pytest lint format migrations-check bench bench-memory clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Serve examples/config.yaml on http://127.0.0.1:4000 with SQLite and master key sk-1234 (from the config).
demo: install
	$(BIN)/modelgate serve --config examples/config.yaml --port 4000 --workers 2

run: demo

# Lint, migrations check, then the whole suite (SQLite by default; set DATABASE_URL for PostgreSQL).
test: install lint migrations-check pytest

pytest: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

# modelgate and LiteLLM's proxy side by side on ../shared/bench's fake upstream; writes docs/performance.md.
bench: install
	bench/run.sh

# RSS of each worker over a 10-minute run of scenario c; appended to docs/performance.md.
bench-memory: install
	bench/memory.sh 600

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache modelgate.sqlite3 .secret_key
