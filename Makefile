# The single entry point for developers and CI (STYLE.md habit 15).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install test test-fast lint fmt demo bench clean

install: $(VENV)/.installed

# the man page is installed as a copy (wheel data), also by the editable install
$(VENV)/.installed: pyproject.toml share/man/man1/git-freq.1
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

test: install lint
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not e2e"

# the demo's stand-in CLIs are Python scripts without a .py suffix: ruff is told of each
STAND_INS := $(addprefix examples/app-factory/stand-ins/,claude codex gemini)

lint: install
	$(BIN)/ruff check freq tests bench $(STAND_INS)
	$(BIN)/ruff format --check freq tests bench $(STAND_INS)
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(PY) -m freq.schemas

fmt: install
	$(BIN)/ruff format freq tests bench $(STAND_INS)
	$(BIN)/ruff check --fix freq tests bench $(STAND_INS)

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/app-factory/run-demo.sh

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
