# KPI report kit. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := data/demo

LAB := $(VENV)/.lab-installed
LAB_ARGS ?=
BENCH_ARGS ?=

.PHONY: help env demo reports test lab lint format clean bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

env: $(STAMP)  ## create the environment (.venv) from pyproject.toml

$(DEMO)/deals.csv: $(STAMP) kpilib/demo.py
	$(BIN)/kpi demo --out $(DEMO)

demo: $(DEMO)/deals.csv  ## generate the demo CRM data, run every department's monthly report and the quarterly verification
	$(BIN)/kpi run monthly --data $(DEMO)
	$(BIN)/kpi run quarterly --data $(DEMO)
	@echo "Open reports/index.html"

test: $(DEMO)/deals.csv  ## run the whole test suite (the notebook runs on the demo data; the reports open in Chromium)
	@bash .ci/ensure-chromium || echo "make test: no Chromium, so the browser tests will be skipped"
	$(BIN)/ruff check kpilib tests benchmarks
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/pytest --nbval-lax --nbval-current-env tests notebooks

$(LAB): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	touch $(LAB)

lab: $(LAB) $(DEMO)/deals.csv  ## open JupyterLab on the notebooks, with the demo data ready
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

bench: $(STAMP)  ## time `kpi run monthly` against a naive papermill loop on demo data (BENCH_ARGS="--help")
	$(BIN)/python benchmarks/batch.py $(BENCH_ARGS)

lint:  ## check style
	$(BIN)/ruff check kpilib tests benchmarks
	$(BIN)/ruff format --check kpilib tests benchmarks

format:  ## format the code
	$(BIN)/ruff format kpilib tests benchmarks

clean:  ## remove generated data and reports (keeps the environment)
	rm -rf $(DEMO) reports/monthly reports/quarterly reports/index.html reports/.kpi-batch.lock tests/output
