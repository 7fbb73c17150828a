# pc_kd: `make demo` runs the image -> 3D distillation demo; `make test` runs the test suite.
# Both create .venv on first use. TORCH picks the torch build (CPU wheel by default; a CUDA machine can
# pass e.g. TORCH="torch==2.13.0 --index-url <your CUDA index>").
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= spconv,test,vis
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pc_kd-installed
PYTEST_ARGS ?=

.PHONY: install test demo demo-supervised clean

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

test: install
	OMP_NUM_THREADS=2 $(PY) -m pytest -q -ra $(PYTEST_ARGS)

demo: install
	$(PY) tools/demo.py --work-dir work_dirs/demo

demo-supervised: install
	$(PY) tools/demo_supervised.py --work-dir work_dirs/demo_supervised

clean:
	rm -rf $(VENV) work_dirs data/synthetic_indoor data/synthetic_indoor_distill data/synthetic_driving
