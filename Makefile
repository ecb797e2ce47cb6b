# Two commands do everything on a fresh machine: `make report` and `make test`.
# Both create .venv and install the project into it first (torch 2.14.1 / torchvision 0.29.1).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hpnb-installed
PROFILE ?= quick
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install test report lab gpu-check clean-outputs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (hpnb)"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

report: $(STAMP)
	$(BIN)/hpnb report --profile $(PROFILE)

# On a CUDA machine: the CUDA tests (fast paths against the eager loop), the benchmark and the paper-profile
# projection. Uses .venv when it exists, else python3 (e.g. the lent GPU machine after ../shared/tools/device-prep).
GPU_PY ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(GPU_PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check: no CUDA device here')"
	$(GPU_PY) -m pytest -q -m cuda -p no:cacheprovider
	$(GPU_PY) -m hpnb.cli bench --device cuda
	$(GPU_PY) -m hpnb.cli project --profile paper --device cuda

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-outputs:
	rm -rf outputs/quick outputs/paper outputs/smoke
