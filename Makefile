# specloom — one Makefile for every routine task. Run `make help`.
#
# Everything installs what it needs: a fresh clone on a machine with Python
# 3.11+, git, and (for the contract lint) Node's npm is enough.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
PROTOS := $(wildcard protos/specloom/v1/*.proto)
GEN_DIR := src/specloom/v1
# Tests create their own databases on this server and drop them after.
export DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: help install gen checkgen lock docs lint-proto breaking lint fmt type imports check test test-fast test-slow run demo bench soak clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The benchmark harness's peers and plotting: `make bench`, and `make test`
# for the harness's smoke test.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

install: $(STAMP)  ## create .venv and install specloom with its dev tools

node_modules/.bin/buf: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

gen: $(STAMP)  ## regenerate the Python stubs (with typed .pyi) from protos/
	tools/gen_protos.sh $(PY) src

checkgen: $(STAMP)  ## fail if regenerating the stubs would change anything
	tools/checkgen.sh $(PY)

lock: $(STAMP)  ## re-resolve deploy/*.lock (pinned, hashed) from pyproject.toml; keeps pins unless UPGRADE=1
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
	  --output-file deploy/requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade) \
	  --only-build-deps --build-deps-for=wheel \
	  --output-file deploy/build-requirements.lock pyproject.toml

docs: $(STAMP)  ## regenerate docs/configuration.md from the settings classes
	$(PY) tools/gen_config_docs.py

lint-proto: node_modules/.bin/buf  ## buf lint (STANDARD + COMMENTS: every field documented)
	node_modules/.bin/buf lint

breaking: node_modules/.bin/buf  ## buf breaking against the last release tag (none yet: says so)
	tools/buf_breaking.sh

lint: $(STAMP)  ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP)  ## ruff format + autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

type: $(STAMP)  ## mypy --strict on hand-written code
	$(VENV)/bin/mypy src services tests bench

imports: $(STAMP)  ## import-linter: services meet only through the protos
	$(VENV)/bin/lint-imports

check: checkgen lint-proto lint type imports  ## every static check

test: check $(BENCH_STAMP)  ## the whole suite (static checks, then pytest: SQLite and PostgreSQL, slow suites included)
	tools/system_deps.sh
	tools/pg_up.sh
	tools/run_pytest.sh $(PY) --require-tests --durations=30

test-fast: $(BENCH_STAMP)  ## pytest without the slow suites (and so without the browser tests)
	tools/pg_up.sh
	tools/run_pytest.sh $(PY) --require-tests -m "not slow"

test-slow: $(BENCH_STAMP)  ## only the slow suites (cluster, faults, the console in a browser)
	tools/system_deps.sh
	tools/pg_up.sh
	tools/run_pytest.sh $(PY) -m slow

run: $(STAMP)  ## run the all-in-one server (every service, one port, SQLite)
	$(VENV)/bin/specloom up

demo: $(STAMP)  ## the end-to-end demo on a throwaway sample project
	$(VENV)/bin/specloom demo

bench: $(BENCH_STAMP)  ## benchmarks against the pgbench ceiling and peers; writes docs/performance.md
	tools/pg_up.sh
	$(PY) -m bench

soak: $(STAMP)  ## 30-minute soak with memory sampling (not part of CI)
	tools/pg_up.sh
	$(PY) -m bench.soak

clean:  ## remove the virtualenv and caches
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis
