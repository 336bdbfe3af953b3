# django-async-bench. Two commands on a fresh machine:
#   make bench   set up, migrate and seed SQLite, run the quick scenario, write the report
#   make test    set up, run the tests (SQLite pass, then the PostgreSQL pass)
# Everything else is optional. PYTHON=/path/to/python3.12 picks the interpreter.

SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
SCENARIO ?= quick
RUN ?= reports/latest
ARGS ?=

.PHONY: install test test-sqlite test-postgres bench run report baseline gate gate-ab gate-baseline gate-accuracy gate-instructions check-intervals cross-check lock check clean

install: $(STAMP)

# Re-install only when the pins change. The lock file is installed with
# --no-deps: it already lists every transitive package at an exact version.
$(STAMP): requirements.lock pyproject.toml scripts/find-python
	@py=$$(PYTHON="$(PYTHON)" scripts/find-python) || exit 1; \
	if [ ! -x $(VPY) ] || ! $(VPY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then \
		echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV) || exit 1; \
	fi
	$(VPY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock
	$(VPY) -m pip check
	@touch $(STAMP)

test: install test-sqlite test-postgres

# Pass 1: every test on the embedded default, SQLite. Tests marked `postgres`
# skip here with the reason "runs in the PostgreSQL pass".
test-sqlite: install
	$(VPY) -m pytest $(ARGS)

# Pass 2: the database tests again on PostgreSQL. Locally they skip with a
# clear reason when no server answers; with CI=true they fail instead.
test-postgres: install
	BENCH_DATABASE_URL=$(PG_URL) $(VPY) -m pytest -m postgres $(ARGS)

bench: install
	$(VPY) runner.py run $(SCENARIO) $(ARGS)

run: bench

report: install
	$(VPY) runner.py report $(RUN) --terminal

baseline: install
	$(VPY) runner.py baseline run ci $(ARGS)

# A/B in one job: base ($$BASE, else HEAD for a tree with changes, else HEAD~1) vs the working tree.
gate: install
	$(VPY) runner.py gate ci $(ARGS)

gate-ab: gate

# The stored-baseline mode (local use): compare with reports/baseline.json from `make baseline`.
gate-baseline: install
	$(VPY) runner.py gate ci --baseline reports/baseline.json $(ARGS)

gate-accuracy: install
	$(VPY) runner.py gate-accuracy ci $(ARGS)

# Instructions per request under valgrind (callgrind), base vs working tree, in
# process (no servers). valgrind from Debian's packages when missing (as root).
gate-instructions: install
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q >/dev/null && apt-get install -y -q valgrind >/dev/null; } \
		|| { echo "gate-instructions needs valgrind: apt-get install valgrind (as root)"; exit 2; }
	$(VPY) runner.py gate-instructions ci $${BASE:+--base $$BASE} $(ARGS)

# locust against wrk, back to back, on the no-I/O arms (wrk from Debian's packages).
cross-check: install
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk >/dev/null; } \
		|| { echo "cross-check needs wrk: apt-get install wrk"; exit 2; }
	$(VPY) runner.py cross-check $(SCENARIO) $(ARGS)

# A/A groups: how often a nominal 95% interval contains 1 (a benchmark, not a test).
check-intervals: install
	$(VPY) runner.py check-intervals aa $(ARGS)

# Lint, format check and types: ruff, then mypy (strict; django-stubs for the
# site). `.ci/run` runs this before `make test`.
CHECKED := asyncbench bench_site upstream locustfiles runner.py
check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(CHECKED)

# Regenerate requirements.lock from the ranges in pyproject.toml.
lock:
	@py=$$(PYTHON="$(PYTHON)" scripts/find-python) || exit 1; \
	tmp=$$(mktemp -d); "$$py" -m venv $$tmp/venv && \
	$$tmp/venv/bin/pip install --quiet --upgrade pip && \
	$$tmp/venv/bin/pip install --quiet -e '.[test]' && \
	{ echo "# Exact pins for \`make install\` (pip freeze of a tested virtualenv)."; \
	  echo "# Benchmark numbers are only comparable with the same servers, clients and Django."; \
	  $$tmp/venv/bin/pip freeze --exclude-editable | grep -v '^-e' ; } > requirements.lock; \
	rm -rf $$tmp; echo "requirements.lock regenerated"

clean:
	rm -rf $(VENV) var .pytest_cache test-artifacts
