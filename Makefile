# The two set-up commands of the README: `make main` (install, then run the main job) and `make test` (install, then every test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# What a re-execution changes without changing a result: timings, papermill's bookkeeping, widget state. Outputs stay (nbval
# compares them).
STRIP_KEYS := metadata.papermill cell.metadata.papermill cell.metadata.execution metadata.widgets

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

install: $(VENV)/.installed

main: install  ## the main experiment at its default parameters -> outputs/01_main_two_stage/<run-id>/
	$(PY) -m iml_nb run 01_main_two_stage

test: install  ## lint, then unit + integration tests and nbval on every notebook (test-size parameters)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

test-fast: install  ## the inner loop: lint and the fast tests, without the slow, notebook, SLURM and browser tiers
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q tests -m "not slow and not notebook and not slurm and not browser"

lint: install  ## ruff (settings in pyproject.toml)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

paper: install  ## every paper section at its defaults, then each pre-registered run (params/*_confirm*.yaml), then the report; resumable (what has a complete run is skipped); days on 2 cores from nothing (the README gives the total, generated from the run folders)
	$(PY) -m iml_nb paper

figures: install  ## redraw every figure of the curated run folders (the ones the docs show) from their stored files
	$(PY) -m iml_nb figures

book: install  ## the results site from the README, docs, report and curated runs -> _build/book/_build/html/index.html (offline)
	$(PY) -m iml_nb book

lab: install  ## JupyterLab on the explorer (notebooks/00_explore.ipynb): stored results, and a short run to try
	$(VENV)/bin/jupyter lab notebooks/00_explore.ipynb

notebooks: install  ## re-run nbval's references: each notebook executed at its test size into tests/notebooks/ (outputs kept)
	for nb in notebooks/*.ipynb; do \
	  stem=$$(basename $$nb .ipynb); \
	  $(PY) -m papermill --cwd . -f tests/params/$$stem.yaml $$nb tests/notebooks/$$stem.ipynb || exit 1; \
	done
	$(VENV)/bin/nbstripout --keep-output --keep-count --extra-keys "$(STRIP_KEYS)" tests/notebooks/*.ipynb

.PHONY: install main test test-fast lint paper figures book lab notebooks
