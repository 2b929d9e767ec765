# One-stop targets. `make test` and `make demo` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export SUBPIXEL_DATA ?= $(abspath ../shared/data)

.PHONY: setup setup-demo test check format demo bench fuzz lock clean

# Locked environments (pip-tools, see CONTRIBUTING.md): the demo's (PyTorch, Pillow,
# safetensors, tqdm), the whole development one (tests, Keras, TensorFlow, JAX, OpenCV 5.0...)
# and a small second one with OpenCV 5.1+ for tests/test_opencv51.py.
DEMO_LOCK := requirements/demo.txt
DEV_LOCK  := requirements/dev.txt
CV51_LOCK := requirements/opencv-5.1.txt
CV51_VENV ?= .venv-opencv51
export SUBPIXEL_OPENCV51_PYTHON ?= $(abspath $(CV51_VENV))/bin/python
CSRC := $(wildcard src/subpixel/_csrc/*.[ch])

$(VENV)/.demo: $(DEMO_LOCK) pyproject.toml setup.py $(CSRC)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r $(DEMO_LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.demo $(DEV_LOCK)
	$(PIP) install -q -r $(DEV_LOCK)
	touch $@

$(CV51_VENV)/.installed: $(CV51_LOCK)
	test -x $(CV51_VENV)/bin/python || $(PYTHON) -m venv $(CV51_VENV)
	$(CV51_VENV)/bin/python -m pip install -q -r $(CV51_LOCK)
	touch $@

setup-demo: $(VENV)/.demo
setup: $(VENV)/.dev $(CV51_VENV)/.installed

# Refresh the locks to the newest releases that pyproject.toml's ranges and constraints.txt
# allow; then run `make test` and commit the locks only if everything passes.
PIP_COMPILE := $(PY) -m piptools compile --quiet --upgrade --strip-extras --generate-hashes \
	--no-emit-index-url --no-emit-find-links
lock: $(VENV)/.dev
	$(PIP_COMPILE) --unsafe-package subpixel --extra dev -c constraints.txt \
		-o $(DEV_LOCK) pyproject.toml
	$(PIP_COMPILE) --unsafe-package subpixel --all-build-deps --extra sr -c constraints.txt \
		-c $(DEV_LOCK) -o $(DEMO_LOCK) pyproject.toml
	$(PIP_COMPILE) -o $(CV51_LOCK) requirements/opencv-5.1.in

check: setup
	$(VENV)/bin/ruff format --check src tests benchmarks scripts examples
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format src tests benchmarks scripts examples
	$(VENV)/bin/ruff check --fix src tests benchmarks scripts examples

test: check
	$(PY) -m pytest -q

demo: setup-demo
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
	rm -rf $(VENV) $(CV51_VENV) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
