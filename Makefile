# The two commands: `make run` (the embedded default: SQLite, filesystem broker, no server) and `make test`
# (PostgreSQL, Redis and a loopback S3 server). `make lint` and `make bench` are what CI and reviewers run.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-requirements
DEV_STAMP := $(VENV)/.installed-requirements-dev

# make run serves here; honcho hands PORT to the first Procfile entry (web). It reads no .env file (--env /dev/null):
# the processes see the same environment as the migrate and seed_demo before them.
PORT ?= 8000

# make test and make bench: the caller's DATABASE_URL / REDIS_URL win, else the local servers.
TEST_DATABASE_URL := $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/trading)
TEST_REDIS_URL := $(or $(REDIS_URL),redis://127.0.0.1:6379/15)
SERVICES_ENV := DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)"
CHROMIUM := /usr/bin/chromium

.DEFAULT_GOAL := help
.PHONY: help venv dev-venv migrate seed run test lint format bench database chromium wrk clean

help:
	@echo "make run    - install into .venv, migrate, load the demo, serve web+worker+beat on http://127.0.0.1:$(PORT)"
	@echo "make test   - the whole suite on PostgreSQL, Redis and a loopback S3 server"
	@echo "make lint   - ruff, import-linter (the layers), mypy, makemigrations --check"
	@echo "make bench  - every benchmarks/*.py script"
	@echo "make venv | migrate | format | clean"

# --- The virtualenv: reinstalled only when a requirements file changes (the stamps record the last install). ---

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(RUN_STAMP) $@

venv: $(RUN_STAMP)

dev-venv: $(DEV_STAMP)

# --- make run ---------------------------------------------------------------------------------------------------

migrate: venv
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

run: seed
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Serving http://127.0.0.1:$(PORT)/ (web, worker, replays worker, beat). Ctrl-C stops them all."
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start --env /dev/null --port $(PORT)

# --- make test ------------------------------------------------------------------------------------------------------

database: dev-venv
	$(PY) .ci/create_database.py "$(TEST_DATABASE_URL)"

# Browser tests drive Debian's Chromium through Playwright; install it once, quietly.
wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
		echo "Installing wrk for the pages load benchmark (apt-get)..."; \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	fi

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "Installing Chromium for the browser tests (apt-get)..."; \
		SUDO=; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# The SQLite lane: what `make run` runs on (SQLite, no Redis) gets the pipeline, run, pages and replay tests too. It
# runs beside the PostgreSQL suite (one core each) and prints its log after; the browser tests and the tests that boot
# the embedded stack (already on SQLite) run once, in the main suite. A run narrowed with PYTEST_ARGS skips the lane.
SQLITE_LANE_TESTS := tests/pipeline tests/replay tests/pages tests/run
SQLITE_LANE_DIR := var/test-lane

test: database chromium
	@rm -rf $(SQLITE_LANE_DIR) && mkdir -p $(SQLITE_LANE_DIR)
	@if [ -z "$(PYTEST_ARGS)" ]; then \
		( TEST_LANE=sqlite DATABASE_URL="sqlite:///$(CURDIR)/$(SQLITE_LANE_DIR)/db.sqlite3" REDIS_URL= \
			DJANGO_VAR_DIR="$(CURDIR)/$(SQLITE_LANE_DIR)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
			$(PY) -m pytest -q -m "not browser and not slow" $(SQLITE_LANE_TESTS) \
			> $(SQLITE_LANE_DIR)/pytest.log 2>&1; echo $$? > $(SQLITE_LANE_DIR)/exit ) & \
	else echo 0 > $(SQLITE_LANE_DIR)/exit; echo "(PYTEST_ARGS given: no SQLite lane)" > $(SQLITE_LANE_DIR)/pytest.log; fi; \
	$(SERVICES_ENV) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS); main=$$?; \
	wait; echo "--- the SQLite lane ---"; cat $(SQLITE_LANE_DIR)/pytest.log; lane=$$(cat $(SQLITE_LANE_DIR)/exit); \
	echo "PostgreSQL suite: exit $$main; SQLite lane: exit $$lane"; [ $$main -eq 0 ] && [ $$lane -eq 0 ]

# --- make lint / bench / clean --------------------------------------------------------------------------------------

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

format: dev-venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every script runs even when one fails; the target fails if any did.
bench: database wrk
	$(SERVICES_ENV) $(PY) manage.py migrate --noinput --verbosity 0
	@failed=0; found=0; \
	for script in benchmarks/*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; \
		$(SERVICES_ENV) DJANGO_SETTINGS_MODULE=config.settings PYTHONPATH="$(CURDIR)" $(PY) "$$script" || failed=1; \
	done; \
	[ $$found -eq 1 ] || echo "no benchmarks/*.py yet"; \
	exit $$failed

# Leaves .venv and var/ (the demo database) alone: `rm -rf .venv var` starts from scratch.
clean:
	rm -rf var/static .pytest_cache test-output benchmarks/output
	find . -name __pycache__ -type d -not -path "./.git/*" -prune -exec rm -rf {} +
