# Two commands do everything: `make report` and `make test`. Each creates the virtual
# environment on first use (requirements.txt, then mamllib itself in editable mode).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= quick

.PHONY: venv test report bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# The whole report: the sweep of training rates (one executed notebook each), the
# theory notebooks, the summary, and the Jupyter Book in book/_build/html/.
# Re-running skips every notebook that is current. JOBS=2 runs two settings at once.
JOBS ?= 1
report: $(STAMP)
	$(PY) -m mamllib report --profile $(PROFILE) -j $(JOBS)
	@echo "open book/_build/html/index.html"

# Speed and memory against the reference MAML implementations -> benchmarks/RESULTS.md
bench: $(STAMP)
	$(PY) benchmarks/bench.py

clean:
	rm -rf runs book/_build book/generated
