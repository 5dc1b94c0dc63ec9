PYTHON ?= python3

.PHONY: install test lint bench

install:
	$(PYTHON) -m pip install -e ".[dev]"

test: install
	$(PYTHON) -m pytest

lint:
	ruff check . && ruff format --check .

bench:
	$(PYTHON) benchmarks/bench_engine.py
