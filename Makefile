# Two entry points: `make test` and `make demo`. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

# `make demo` keeps its AiiDA configuration in the repository (.aiida/.aiida, git-ignored): a SQLite profile made
# by `verdi presto` (ZeroMQ broker, no services), so it never touches ~/.aiida.
DEMO_PROFILE ?= chimes-demo
DEMO_AIIDA_PATH := $(CURDIR)/.aiida
DEMO_ARGS ?=

.PHONY: test demo demo-profile demo-md install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# tests/ (temporary broker-less profile), then tests_daemon/ (own session: a profile with the ZeroMQ broker)
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q tests_daemon

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo-profile demo: export AIIDA_PATH := $(DEMO_AIIDA_PATH)

# the profile (once) and the localhost computer + codes (idempotent)
demo-profile: $(STAMP)
	@$(BIN)/verdi profile show $(DEMO_PROFILE) >/dev/null 2>&1 \
		|| $(BIN)/verdi presto --profile-name $(DEMO_PROFILE) --non-interactive
	$(BIN)/aiida-chimes -p $(DEMO_PROFILE) setup

# hierarchical C/N fit with GFN1-xTB (tiles C, N, then CN): a few minutes on 2 cores
demo: demo-profile
	$(BIN)/verdi -p $(DEMO_PROFILE) run examples/cn_hierarchical/run.py $(DEMO_ARGS)

# short NVE MD of liquid carbon with an official ChIMES potential (no AiiDA)
demo-md: $(STAMP)
	$(BIN)/python examples/nve_liquid_carbon.py

clean:
	rm -rf $(VENV) build *.egg-info
