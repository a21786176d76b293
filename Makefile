# Two commands set everything up on a machine with python3 and make:
#   make demo   - create .venv, install cptpub, build the demo publications into dist/
#   make test   - install the test extras and system tools the tests drive, then run the whole suite
#   make test-min - the same with the minimum versions pyproject.toml allows (a separate .venv-min), quick subset
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CPTPUB := $(VENV)/bin/cptpub
DEMO_INPUTS := build/demo-inputs
PYTEST_ARGS ?= -n 2
# make test-min: the oldest versions pyproject.toml allows, in their own venv, against a quick part of the suite
VENV_MIN := .venv-min
MIN_TESTS ?= tests/test_records.py tests/test_ingest_pfs.py tests/test_ingest_tic.py tests/test_benchmarks.py \
	tests/test_sections.py tests/test_demo_generator.py tests/test_warm_engine.py tests/test_end_to_end.py

.PHONY: demo install install-test system-deps test test-min lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

# The demo goes through the same commands a user runs: generate inputs, ingest them, build.
demo: install
	$(CPTPUB) demo-inputs $(DEMO_INPUTS)
	$(CPTPUB) ingest pfs $(DEMO_INPUTS)/PPRRVU2026_Jul_nonQPP.csv
	$(CPTPUB) ingest tic $(DEMO_INPUTS)
	$(CPTPUB) build --all
	@echo "Demo publications are in dist/ (open dist/index.html)."

# Chromium (browser tests) and poppler-utils (pdftoppm) come from Debian; installed only when missing.
system-deps:
	@command -v chromium >/dev/null && command -v pdftoppm >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils; }

lint: install-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src/cptpub

test: install-test system-deps lint
	CPTPUB_REQUIRE_SYSTEM_TOOLS=1 $(PY) -m pytest $(PYTEST_ARGS)

# Every `>=` floor of pyproject.toml pinned exactly (tests/min_versions.py writes the constraints), installed into
# .venv-min; a floor older than an API cptpub uses fails here. Needs system-deps for the PDF checks.
test-min: system-deps
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_MIN)/bin/python tests/min_versions.py > $(VENV_MIN)/constraints.txt
	$(VENV_MIN)/bin/python -m pip install --quiet -c $(VENV_MIN)/constraints.txt -e '.[test]'
	$(VENV_MIN)/bin/python -m pip freeze --exclude-editable > $(VENV_MIN)/installed.txt
	$(VENV_MIN)/bin/python -m pytest -p no:cacheprovider -q $(MIN_TESTS)

bench: install-test
	$(PY) bench/ingest.py
	$(PY) bench/build.py
	$(PY) bench/execution.py
	$(PY) bench/assembly.py
	$(PY) bench/catalogue_page.py

clean:
	rm -rf build dist
