# One-stop targets. `make test` and `make demo` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= test
export SUBPIXEL_DATA ?= $(abspath ../shared/data)

.PHONY: setup test check format demo bench fuzz clean

$(VENV)/.installed: pyproject.toml constraints.txt setup.py $(wildcard src/subpixel/_csrc/*.[ch])
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

setup: $(VENV)/.installed

check: setup
	$(VENV)/bin/ruff format --check src tests benchmarks scripts examples
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format src tests benchmarks scripts examples
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts examples

test: check
	$(PY) -m pytest -q

demo: setup
	$(PY) examples/demo.py

bench: setup
	$(PY) benchmarks/bench_ops.py

# Fuzz image decoding + upscaling and the command line (tests/test_fuzz.py) with fresh
# randomness for FUZZ_SECONDS seconds in all (default 120); `make test` runs a fixed seed.
FUZZ_SECONDS ?= 120
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) -m pytest -q -s -p no:cacheprovider \
		-W ignore::UserWarning tests/test_fuzz.py -k fuzz_

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
