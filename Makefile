# Nurture developer tasks. `make run` to try it, `make test` for the whole suite
# (what CI runs through .ci/run), `make lint` before pushing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k consent -x"`.
PYTEST_ARGS ?=
# Stamp written after a successful install: the venv is re-installed whenever a
# requirements file is newer than it.
STAMP := $(VENV)/.installed

.PHONY: help venv run worker migrate test lint bench bench-more _bench clean

help:
	@echo "make run      set up, migrate, load funnels/*.yaml, start web app + worker"
	@echo "make test     the whole test suite (installs PostgreSQL and Chromium if missing)"
	@echo "make lint     ruff check, ruff format --check, mypy app/engine"
	@echo "make bench    the performance benchmarks (under 10 minutes); make bench-more: the rest"
	@echo "make worker   run the worker alone"
	@echo "make migrate  migrate the database to head"
	@echo "make clean    remove the virtualenv, caches and test leftovers"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: venv
	mkdir -p instance
	$(BIN)/flask db upgrade

# The web app and the worker run side by side; Ctrl-C (or either one dying) stops
# both. Background jobs of a non-interactive shell ignore SIGINT, so the trap has to
# pass the stop on as SIGTERM.
run: migrate
	$(BIN)/flask segments load segments/*.yaml
	$(BIN)/flask funnels load funnels/*.yaml
	$(BIN)/flask users ensure-admin
	@echo
	@echo "Console: http://127.0.0.1:$(PORT)/console"
	@echo "(log in with the account printed above; Ctrl-C stops the web app and the worker)"
	@echo
	@pids=(); \
	stop() { trap - INT TERM EXIT; kill -TERM "$${pids[@]}" 2>/dev/null || true; wait || true; }; \
	trap stop INT TERM EXIT; \
	$(BIN)/flask worker & pids+=($$!); \
	$(BIN)/flask run --host 127.0.0.1 --port $(PORT) & pids+=($$!); \
	status=0; wait -n || status=$$?; exit $$status

worker: migrate
	$(BIN)/flask worker

# The throwaway PostgreSQL cluster is stopped on every way out (pass, fail, Ctrl-C)
# and the target exits with pytest's own status (so exit 5, "no tests", fails too).
# A TEST_PG_URL already in the environment (your own server) is used as is.
# Without PostgreSQL the PostgreSQL tests skip, except in CI where that is an error.
test: venv
	bash scripts/system-deps.sh
	@if [[ -n "$${TEST_PG_URL:-}" ]]; then \
	  echo "test: using TEST_PG_URL from the environment"; \
	else \
	  trap 'bash scripts/pg.sh stop' EXIT; \
	  trap 'exit 130' INT TERM; \
	  if bash scripts/pg.sh start; then \
	    export TEST_PG_URL="$$(bash scripts/pg.sh url)"; \
	  elif [[ "$${CI:-}" == "true" ]]; then \
	    echo "test: PostgreSQL could not be started, and CI=true requires it" >&2; \
	    exit 1; \
	  else \
	    echo "test: WARNING: no PostgreSQL; tests marked pg will be skipped" >&2; \
	  fi; \
	fi; \
	status=0; \
	$(BIN)/pytest -m 'slow or not slow' $(PYTEST_ARGS) || status=$$?; \
	exit $$status

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app/engine

# The performance targets (README "Performance"), in under 10 minutes; bench-more runs
# the slower data-volume benchmarks of analytics and segments. Benchmarks that need
# PostgreSQL get the same throwaway cluster as the tests, stopped afterwards.
BENCH := tick send memory ingest simulate workers
BENCH_MORE := analytics segments

bench: venv
	@$(MAKE) --no-print-directory _bench SCRIPTS="$(BENCH)"

bench-more: venv
	@$(MAKE) --no-print-directory _bench SCRIPTS="$(BENCH_MORE)"

_bench:
	bash scripts/system-deps.sh
	@if [[ -z "$${TEST_PG_URL:-}" ]]; then \
	  trap 'bash scripts/pg.sh stop' EXIT; \
	  bash scripts/pg.sh start && export TEST_PG_URL="$$(bash scripts/pg.sh url)"; \
	fi; \
	begun=$$SECONDS; \
	for name in $(SCRIPTS); do \
	  echo "== bench/$$name.py"; $(BIN)/python "bench/$$name.py" || exit 1; \
	done; \
	echo "== all figures in $$((SECONDS - begun)) s"

clean:
	-bash scripts/pg.sh stop
	rm -rf $(VENV) .tmp test-artifacts .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
