# The two commands of the README: `make run` (whole pipeline on the embedded default data) and
# `make test` (the test suite). Both create the environment first if it is missing or stale.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Python 3.12 exactly: pymc 6 and arviz 1 need it, and on 3.11 pip silently resolves the old
# pymc 5 / arviz 0.2x stack (see README, "Why Python 3.12").
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
CORES ?= all
export PYTENSOR_FLAGS ?= compiledir=$(CURDIR)/.pytensor
export MPLBACKEND ?= Agg
# one BLAS thread per process: the pipeline's jobs and the tests run side by side on the cores
export OPENBLAS_NUM_THREADS ?= 1
export OMP_NUM_THREADS ?= 1
# Python may cache bytecode (__pycache__, ignored by git): with PYTHONDONTWRITEBYTECODE set, as some shells and
# CI images set it, every pipeline job and every test subprocess compiles the package's modules again (about
# 0.2-0.5 s a process, over a hundred processes in make test) and pytest rewrites every test module in each worker
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-fast lint env report clean-results browser

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -n "$(PYTHON312)" || { echo "error: Python 3.12 not found (tried python3.12 and ~/.pyenv/versions/3.12*); install it or set PYTHON312=/path/to/python3.12" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON312) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete
	@echo ""
	@echo "Pipeline finished. Open results/report/index.html (tables: results/report/tables/, provenance: results/provenance.json)."

# Debian's chromium renders the report in the browser check (tests/test_report_browser.py); installed
# here when missing and possible (root + apt), otherwise that test is skipped with its reason.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the report's browser check"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not found and cannot be installed here; the browser check is skipped"; fi; }

# `make test`: the four lint steps, then the fast tier (unit and validation tests: everything not marked
# `pipeline`), then the pipeline tier (the Snakemake workflow and whole-pipeline runs: tests/pipeline/,
# tests/report/ and the tests marked `pipeline`; on two workers too, the shared pipeline runs made once for both,
# tests/pipeline_runs.py). Each tier ends with its 15 slowest tests.
PYTEST := $(BIN)/python -m pytest

test: $(STAMP) browser
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test-fast
	$(PYTEST) -m pipeline -n 2 --dist loadfile --durations=15

test-fast: $(STAMP)
	$(PYTEST) -m "not pipeline" -n 2 --dist loadfile --durations=15

# Python (ruff: lint, then format), the Snakemake files (snakefmt), the workflow (snakemake --lint); all
# configured in pyproject.toml except the last.
lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --report results/snakemake_report.html

clean-results:
	rm -rf results .snakemake
