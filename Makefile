# The test environment: a virtualenv of this checkout (.venv), created on first use and
# brought to the newest releases the package allows on every `make test`, as a new user's
# fresh install would get them. PYTHON=... tests another interpreter's environment instead
# (still upgraded to the newest allowed releases).
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# The directory of $(PYTHON)'s scripts (kailash-nb, jupyter), put first on PATH for the tests.
SCRIPTS = $$($(PYTHON) -c 'import os, sys; print(os.path.dirname(sys.executable))')

# The notebooks in notebooks/ run as tests too: every cell's output must match the saved
# one after the substitutions in notebooks/sanitize.cfg (tracebacks are not compared).
# IPYKERNEL_CELL_NAME is deliberately not set: it gives every cell the same file name, so
# reading a function's source back (kn.export) would find the wrong cell.
NBVAL = --nbval --nbval-kernel-name python3 --nbval-sanitize-with notebooks/sanitize.cfg

.PHONY: install test test-notebooks update-notebooks docs lint bench

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# Installing (editable) also builds the JupyterLab extension in labextension/ when it is
# missing or its sources changed, which needs Node.js ^20.19 or >=22.12 with npm
# (docs/development.md).
install: $(if $(filter $(VENV)/bin/python,$(PYTHON)),$(VENV)/bin/python)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --upgrade --upgrade-strategy eager -e ".[dev]"

# Runs the whole suite and the notebooks in one pytest run, on the newest releases of
# every dependency the package allows (see install). The storage and SQL tests also run
# against PostgreSQL when one answers on 127.0.0.1:5432 (a local Debian cluster is started
# if it is down), the shared rate-limiter tests against Redis on 127.0.0.1:6379 (started
# if it is installed but down). The notebooks and the browser test need a python3
# kernelspec (installed when missing); the browser test needs Debian's chromium
# (installed when root). First, lint-imports checks the layer contracts in pyproject.toml
# (docs/architecture.md); then the documentation site is built (see docs).
test: install
	"$(SCRIPTS)/lint-imports" --no-cache
	$(MAKE) docs
	bash tools/ensure_browser.sh
	bash tools/ensure_kernel.sh $(PYTHON)
	KAILASH_NB_TEST_PG_URL="$${KAILASH_NB_TEST_PG_URL:-$$(bash tools/ensure_postgres.sh)}" \
	KAILASH_NB_TEST_REDIS_URL="$${KAILASH_NB_TEST_REDIS_URL:-$$(bash tools/ensure_redis.sh)}" \
	PATH="$(SCRIPTS):$$PATH" \
		$(PYTHON) -m pytest tests notebooks $(NBVAL)

# Only the notebooks, without reinstalling (after a `make install`).
test-notebooks:
	bash tools/ensure_kernel.sh $(PYTHON)
	PATH="$(SCRIPTS):$$PATH" $(PYTHON) -m pytest notebooks $(NBVAL)

# Re-executes the notebooks and saves their outputs (after an intended change of output).
update-notebooks: install
	bash tools/ensure_kernel.sh $(PYTHON)
	$(PYTHON) tools/update_notebooks.py

# The documentation site, in docs/_build/html (after a `make install`): warnings are
# errors, and -E reads every page again so a warning is never hidden by an earlier build.
# The tutorials are the notebooks with their saved outputs; nothing is executed.
docs:
	$(PYTHON) -m sphinx -E -W --keep-going -q -b html docs docs/_build/html

lint:
	ruff check . && ruff format --check .

bench: install
	$(PYTHON) benchmarks/bench_engine.py --history
