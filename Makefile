# Two commands matter:  `make up` (set everything up, run the whole mesh)  and  `make test`.
# `make check` is the fast loop: lint, unit tests and the static config checks (no service runs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup up test check generate bench clean

setup: $(VENV)/.installed .system-packages web_client/dist/index.html

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

.system-packages: scripts/install_system_packages.sh
	scripts/install_system_packages.sh
	touch $@

# The Exec Sandbox page, built from the committed lockfile (the stack serves web_client/dist).
web_client/dist/index.html: web_client/package-lock.json $(wildcard web_client/src/*.ts web_client/src/*.css web_client/src/mesh/*.ts web_client/src/mesh/*.css web_client/src/gen/*/*/*/*.ts) web_client/index.html web_client/mesh.html web_client/vite.config.ts
	cd web_client && npm ci --no-audit --no-fund && npm run build

up: setup
	$(BIN)/opsconductor up

test: setup
	$(BIN)/pytest

check: setup
	$(BIN)/ruff check .
	$(BIN)/pytest tests/unit tests/static -q

# Stubs from proto/ and every config rendered from code.
generate: setup
	scripts/generate.sh

bench: setup
	$(BIN)/opsconductor bench

clean:
	rm -rf $(VENV) .system-packages .pytest_cache
