# django-async-bench. Two commands on a fresh machine:
#   make bench   set up, migrate and seed SQLite, run the quick scenario, write the report
#   make test    set up, run the tests (SQLite pass, then the PostgreSQL and MariaDB passes)
# Everything else is optional. PYTHON=/path/to/python3.12 picks the interpreter.

SHELL := /bin/bash
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
# pytest-django creates (and drops) test_bench_test from it; root may create databases.
MARIADB_URL ?= mysql://root@127.0.0.1:3306/bench_test
MARIADB_STAMP := $(VENV)/.installed-mariadb
SCENARIO ?= quick
RUN ?= reports/latest
ARGS ?=

.PHONY: install install-mariadb test test-sqlite test-postgres test-mariadb bench frontier run report baseline gate gate-ab gate-baseline gate-accuracy gate-instructions check-intervals cross-check lock check clean

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

test: install test-sqlite test-postgres test-mariadb

# Pass 1: every test on the embedded default, SQLite. Tests marked `postgres`
# skip here with the reason "runs in the PostgreSQL pass".
test-sqlite: install
	$(VPY) -m pytest $(ARGS)

# Pass 2: the database tests again on PostgreSQL. Locally they skip with a
# clear reason when no server answers; with CI=true they fail instead.
test-postgres: install
	BENCH_DATABASE_URL=$(PG_URL) $(VPY) -m pytest -m postgres $(ARGS)

# Pass 3: the database tests on MariaDB, skipped or failed as in pass 2.
# Without the driver's build dependency (and not root to install it) the pass
# is skipped with the reason locally; under CI=true it fails.
test-mariadb: install
	@if $(MAKE) --no-print-directory install-mariadb; then \
		BENCH_DATABASE_URL=$(MARIADB_URL) $(VPY) -m pytest -m mariadb $(ARGS); \
	elif [ "$$CI" = true ]; then \
		echo "test-mariadb: the MariaDB driver could not be installed (CI=true: the MariaDB pass is required)"; exit 1; \
	else \
		echo "test-mariadb: SKIPPED, the MariaDB driver (mysqlclient) could not be installed; see the message above"; \
	fi

# The MariaDB/MySQL driver, only where MariaDB is used (`make test-mariadb`,
# `runner.py run --db mariadb`): mysqlclient builds from source against
# libmariadb-dev and pkg-config, which `make install` (SQLite) must not need.
install-mariadb: $(MARIADB_STAMP)

$(MARIADB_STAMP): requirements-mariadb.lock $(STAMP)
	@pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo "installing libmariadb-dev pkg-config gcc (apt)" \
			&& apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends libmariadb-dev pkg-config gcc libc6-dev >/dev/null; } \
		|| { echo "mysqlclient builds against libmariadb-dev and pkg-config: apt-get install libmariadb-dev pkg-config gcc (as root)"; exit 2; }
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-mariadb.lock
	$(VPY) -m pip check
	@touch $(MARIADB_STAMP)

bench: install
	$(VPY) runner.py run $(SCENARIO) $(ARGS)

# Django's async frontier: four runs (SQLite, PostgreSQL, MariaDB, the
# middleware stacks; about 20 min), then one report whose claims table takes
# evidence from all four: $(FRONTIER)/sqlite/latest/index.html.
FRONTIER ?= reports/frontier
frontier: install install-mariadb
	$(VPY) runner.py run frontier --reports-dir $(FRONTIER)/sqlite --no-report $(ARGS)
	$(VPY) runner.py run frontier-postgres --db $(PG_URL) --reports-dir $(FRONTIER)/postgres $(ARGS)
	$(VPY) runner.py run frontier-mariadb --reports-dir $(FRONTIER)/mariadb $(ARGS)
	$(VPY) runner.py run middleware --reports-dir $(FRONTIER)/middleware $(ARGS)
	$(VPY) runner.py report $(FRONTIER)/sqlite/latest --evidence $(FRONTIER)/postgres/latest \
		--evidence $(FRONTIER)/mariadb/latest --evidence $(FRONTIER)/middleware/latest --terminal

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
