PYTHON ?= python3

.PHONY: install test lint bench

install:
	$(PYTHON) -m pip install -e ".[dev]"

# Runs the whole suite. The storage and SQL tests also run against PostgreSQL when
# one answers on 127.0.0.1:5432 (a local Debian cluster is started if it is down).
test: install
	KAILASH_NB_TEST_PG_URL="$${KAILASH_NB_TEST_PG_URL:-$$(bash tools/ensure_postgres.sh)}" \
		$(PYTHON) -m pytest

lint:
	ruff check . && ruff format --check .

bench:
	$(PYTHON) benchmarks/bench_engine.py --history
