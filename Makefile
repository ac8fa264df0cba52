# The README's two commands. Each creates .venv and installs the project (editable) into it
# the first time, and again whenever pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-spikeda

.PHONY: demo test test-slow bench bench-dapper bench-peers bench-sim clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,nwb,plot]'
	touch $(STAMP)

# The main job: the quickstart twin experiment (configs/quickstart.yaml), a 150-member
# ensemble of a 1000-neuron network assimilating GCaMP6s calcium of 600 neurons on a
# LocalCluster, a few minutes on 2 cores. It prints the table of truth, prior and
# posterior, and writes quickstart.run.zarr and its figures (quickstart.run.zarr.plots/).
# Then the filters' own check, the Lorenz-96 twin of Sakov & Oke (2008), about 10 s.
demo: $(STAMP)
	$(VENV)/bin/spikeda run configs/quickstart.yaml --out quickstart.run.zarr --overwrite
	$(VENV)/bin/spikeda plot quickstart.run.zarr
	$(VENV)/bin/spikeda twin-toy configs/l96_sakov2008.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

# Full-length validation runs (the published benchmark lengths); CI runs them too.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

# Filter tables and timings beside DAPPER (installs the optional peer first).
bench-dapper: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,nwb,plot,bench]'

# Brian2 and NEST in their own environment (they pin numpy < 2.3).
PEERS := .venv-peers
$(PEERS)/.installed: benchmarks/requirements-peers.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet -r benchmarks/requirements-peers.txt
	touch $@

bench-peers: $(PEERS)/.installed

bench-sim: $(STAMP) bench-peers
	$(PY) benchmarks/simulate.py

bench: bench-dapper bench-peers
	$(PY) benchmarks/filters.py
	$(PY) benchmarks/large_scale.py
	$(PY) benchmarks/simulate.py

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .hypothesis *.egg-info
