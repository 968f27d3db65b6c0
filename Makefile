# Two commands do everything on a fresh machine:
#   make demo   - create .venv, install, bound the bundled MNIST network (comparison table)
#   make test   - create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test test-all bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch==2.13.0 first: it resolves to the local CPU build (any other version pulls gigabytes)
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps "deel-torchlip>=1.0" "monotonicnetworks>=1.5"  # lipnets extra, keeping torch==2.13.0
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m benchmarks.demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

SUITE ?= solvers
bench: $(STAMP)
	$(PY) -m benchmarks $(SUITE) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
