# Two commands: `make run` and `make test`. Both build the virtualenv from nothing on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install run test test-browser lint format bench-ingest bench-assign bench-rollup bench-retention bench-conversions clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install the project with its dev tools

run: $(STAMP) ## Start the embedded PostgreSQL, migrate, serve on 127.0.0.1:8000
	$(BIN)/corp-astro serve --host 127.0.0.1 --port 8000

test: $(STAMP) ## Run the whole test suite against a real PostgreSQL, then the browser tests
	$(BIN)/python -m pytest --ignore=tests/browser
	$(MAKE) test-browser

test-browser: $(STAMP) ## The web app in headless Chromium (/usr/bin/chromium; skipped without it unless CORP_ASTRO_REQUIRE_BROWSER=1)
	$(BIN)/python -m pytest tests/browser

lint: $(STAMP) ## ruff, mypy --strict, the import contracts (import-linter) and the size bounds (radon)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/check_bounds.py

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench-ingest: $(STAMP) ## Ingest benchmark (raw COPY vs end-to-end HTTP)
	$(BIN)/corp-astro bench ingest

bench-assign: $(STAMP) ## Assignment benchmark
	$(BIN)/corp-astro bench assign

bench-rollup: $(STAMP) ## Rollup and export benchmark
	$(BIN)/corp-astro bench rollup

bench-retention: $(STAMP) ## Partition drop vs DELETE benchmark
	$(BIN)/corp-astro bench retention

bench-conversions: $(STAMP) ## Incremental conversion run: 10M historical events vs 100k
	$(BIN)/corp-astro bench conversions

clean: ## Remove the virtualenv and caches (keeps .data/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
