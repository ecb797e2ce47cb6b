# Two commands do everything on a fresh machine: `make report` and `make test`.
# Both create .venv and install the project into it first (torch 2.14.1 / torchvision 0.29.1).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hpnb-installed
PROFILE ?= quick
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install test report lab clean-outputs

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

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-outputs:
	rm -rf outputs/quick outputs/paper outputs/smoke
