# The single entry point for developers and CI (STYLE.md habit 15).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: install test test-fast test-remote test-agents test-browser agent-clis lint fmt demo bench \
	screenshot clean

# the bytecode of freq, compiled as a wheel install compiles it: Python writes none where
# PYTHONDONTWRITEBYTECODE is set, and every `git freq` would compile its ~70 modules again
# (about 170 ms of each start); compileall skips what is up to date
install: $(VENV)/.installed
	@$(PY) -m compileall -q freq

# the man page is installed as a copy (wheel data), also by the editable install
$(VENV)/.installed: pyproject.toml share/man/man1/git-freq.1
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# the distribution was named freq before it became git-freq: drop that older install
	@$(PY) -m pip uninstall -q -y --disable-pip-version-check freq 2>/dev/null || true
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

# the real agent CLIs' suite (tests/agents_real) runs only under `make test-agents`, the
# dashboard in a real Chromium (tests/browser) only under `make test-browser`
test: install lint
	$(PY) -m pytest -q -m "not agents and not browser"

test-fast: install
	$(PY) -m pytest -q -m "not e2e and not agents and not browser"

# Playwright drives Debian's Chromium (`apt-get install chromium`); no browser is downloaded
test-browser: install
	$(PY) -m pytest -q -m browser tests/browser

# docs/img/board.png: the demo's board in Chromium (docs/dashboard.md)
screenshot: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) docs/screenshot.py docs/img/board.png

# The real Claude Code, Codex and Gemini CLIs from npm, installed once per version set in a
# cache outside the repository (docs/agents-testing.md).
# (tests/agents_real/clis.py VERSIONS says the same; a test checks what is installed)
CLAUDE_CODE_VERSION := 2.1.197
CODEX_VERSION := 0.171.0
GEMINI_CLI_VERSION := 0.61.0
AGENT_CLIS := @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION) \
	@google/gemini-cli@$(GEMINI_CLI_VERSION)
AGENTS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/freq-test-agents
AGENTS_PREFIX := $(AGENTS_CACHE)/claude-$(CLAUDE_CODE_VERSION)_codex-$(CODEX_VERSION)_gemini-$(GEMINI_CLI_VERSION)

agent-clis: $(AGENTS_PREFIX)/.installed

$(AGENTS_PREFIX)/.installed:
	@command -v npm >/dev/null || { echo "make test-agents needs npm (Node.js 20 or later)"; exit 1; }
	mkdir -p $(AGENTS_PREFIX)
	npm install --prefix $(AGENTS_PREFIX) --no-save --no-audit --no-fund --loglevel=error $(AGENT_CLIS)
	@touch $@

# tests/agents_real, and the adapters' own opt-in test against the same CLIs
test-agents: install agent-clis
	FREQ_AGENTS_BIN=$(AGENTS_PREFIX)/node_modules/.bin FREQ_AGENT_CLIS=$(AGENTS_PREFIX)/node_modules/.bin \
		$(PY) -m pytest -q tests/agents_real tests/test_agent_clis_real.py

# the multi-machine audit at the issue's size: 300 subjects, three clones, every transport
test-remote: install
	FREQ_REMOTE_SUBJECTS=300 $(PY) -m pytest -q tests/e2e/test_remote_workers.py

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
