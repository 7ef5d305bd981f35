# The two commands of the README: `make run` and `make test`.
# Both create (or reuse) .venv and install the package with everything it needs
# (the `lint` extra too: the pinned ruff, snakefmt and mypy of `make lint`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: setup run test test-paper test-unit test-slurm lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[workflow,test,lint]'
	touch $@

# Main job: the embedded default (synthetic data, small models, offline) end to end.
run: setup
	$(BIN)/snakemake --cores $(CORES)

# The tests (unit, workflow dry runs, a tiny end-to-end run with executed kill/change
# reruns, the learning check), except those needing Slurm or the paper's real model sizes.
test: setup
	$(BIN)/python -m pytest -q -m "not slurm and not paper"

# The paper's models at their real size (random weights, CPU): one step of every
# system, and the paper setup's workflow to the table (config/paper_cpu.yaml). CI runs it.
test-paper: setup
	$(BIN)/python -m pytest -q -m paper

# Unit tests only: everything but the Snakemake workflow runs and the Slurm tests.
test-unit: setup
	$(BIN)/python -m pytest -q -m "not workflow and not slurm and not paper"

# The house style (docs/ARCHITECTURE.md): lint, formatting of the Python and of
# the Snakefiles, types. Every check runs, so one call lists all findings;
# `ruff format .` and `snakefmt .` apply the formatting.
lint: setup
	rc=0; \
	$(BIN)/ruff check . || rc=1; \
	$(BIN)/ruff format --check . || rc=1; \
	$(BIN)/snakefmt --check . || rc=1; \
	$(BIN)/mypy || rc=1; \
	exit $$rc

# The Slurm profile against a real single-node Slurm (needs root; .ci/run calls it).
test-slurm: setup
	bash .ci/slurm_up.sh
	$(BIN)/python -m pytest -q -m slurm; rc=$$?; bash .ci/slurm_down.sh; exit $$rc

clean:
	rm -rf results .snakemake
