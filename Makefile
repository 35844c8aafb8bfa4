# Two commands do everything: `make report` and `make test`. Each creates the virtual
# environment on first use (requirements.txt, then mamllib itself in editable mode).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= quick

.PHONY: venv test report bench lab clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The linter first (its settings are in pyproject.toml), then the test suite.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

# The whole report: the sweep of training rates (one executed notebook each), the
# theory notebooks, the summary, and the Jupyter Book in book/_build/html/.
# Re-running skips every notebook that is current. JOBS=2 (the default): a local Dask
# cluster of two workers, two settings at once, the cores shared between them (on 2 cores
# the whole report took 0.80x the time of JOBS=1: benchmarks/REPORT_TIME.md); JOBS=1: one
# worker with every core. MAMLLIB_SCHEDULER=tcp://HOST:8786 uses a running cluster.
# TIER=full trains every setting of every experiment (mamllib/tiers.py; for a cluster);
# TIER=sweep the main sweep alone at seed 0, what the report of d266885 held.
JOBS ?= 2
TIER ?= default
report: $(STAMP)
	$(PY) -m mamllib report --profile $(PROFILE) -j $(JOBS) --tier $(TIER)
	@echo "open book/_build/html/index.html"

# Speed and memory against the reference MAML implementations -> benchmarks/RESULTS.md
bench: $(STAMP)
	$(PY) benchmarks/bench.py

# JupyterLab on the venv's kernel, to re-run a notebook cell by cell after changing its
# parameters. jupytext serves notebooks/*.py as notebooks; its default viewer (written
# into the venv, not ~/.jupyter) opens them as notebooks on a click, not as text.
# Root is the rule in a container, and jupyter refuses it without --allow-root.
# LAB_ARGS adds options, e.g. LAB_ARGS="--no-browser --port=8900".
LAB_VIEWERS := $(VENV)/etc/jupyter/labconfig/default_setting_overrides.json
LAB_ARGS ?=
lab: $(STAMP) $(LAB_VIEWERS)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

$(LAB_VIEWERS): $(STAMP)
	$(VENV)/bin/jupytext-config --settings-file $@ set-default-viewer python

clean:
	rm -rf runs book/_build book/generated
