# Two commands matter:  `make up` (set everything up, run the whole mesh)  and  `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup up test generate lint-proto bench clean

setup: $(VENV)/.installed .system-packages

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

.system-packages: scripts/install_system_packages.sh
	scripts/install_system_packages.sh
	touch $@

up: setup
	$(BIN)/opsconductor up

test: setup
	$(BIN)/pytest

generate: setup
	scripts/generate.sh

bench: setup
	$(BIN)/opsconductor bench

clean:
	rm -rf $(VENV) .system-packages .pytest_cache
