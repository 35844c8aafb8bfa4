# Two commands do everything: `make report` and `make test`. Each creates the virtual
# environment on first use (requirements.txt, then mamllib itself in editable mode).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The default grid of training inner rates (DESIGN.md, issue "The reproducible paper").
RATES ?= -0.4 -0.1 -0.01 0 0.01 0.1 0.4
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

# Until the papermill sweep and the book land, the report is the trained grid:
# one run folder per training rate under runs/, each with metrics.json.
report: $(STAMP)
	for rate in $(RATES); do \
	  $(PY) -m mamllib train --profile $(PROFILE) --inner-lr=$$rate --out runs/$(PROFILE)/lr$$rate || exit $$?; \
	done
	$(PY) -m mamllib train --profile $(PROFILE) --learn-inner-lr --out runs/$(PROFILE)/learned

clean:
	rm -rf runs _build book/_build book/generated
