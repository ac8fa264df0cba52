# The README's two commands. Each creates .venv and installs the project (editable) into it
# the first time, and again whenever pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-spikeda

.PHONY: demo test test-slow bench bench-dapper clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job. Until the assimilation driver lands it is the Lorenz-96 twin of
# Sakov & Oke (2008): three filters, two seeds, 5000 cycles each, about 10 s.
demo: $(STAMP)
	$(VENV)/bin/spikeda twin-toy configs/l96_sakov2008.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Full-length validation runs (the published benchmark lengths); CI runs them too.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Filter tables and timings beside DAPPER (installs the optional peer first).
bench-dapper: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'

bench: bench-dapper
	$(PY) benchmarks/filters.py
	$(PY) benchmarks/large_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
