# make demo  - set up, then run every enabled workflow on the example inputs (profiles/local)
# make test  - set up, then lint and run the whole test suite (a real single-node SLURM included;
#              without SLURM, or without root to install it, the SLURM tests fail: they never skip)
#              in random order: make test PYTEST_ARGS=--random-order  (the seed is printed;
#              rerun one order with PYTEST_ARGS=--random-order-seed=N)
# Both are idempotent: a second run only redoes what changed.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
SNAKEMAKE := $(BIN)/snakemake
PYTEST_ARGS ?=

.PHONY: setup sysdeps testdeps venv examples demo report test lint unit clean

setup: sysdeps venv examples

sysdeps:
	scripts/install_debian_packages.sh envs/debian-packages.txt

testdeps:
	scripts/install_debian_packages.sh envs/debian-test-packages.txt

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

examples: .make/examples
.make/examples: $(VENV)/.installed scripts/make_examples.py $(wildcard scripts/*/example_inputs.py)
	$(BIN)/python scripts/make_examples.py examples
	mkdir -p .make && touch $@

# rnaseq starts from accessions: a loopback server plays ENA's filereport and mirror meanwhile
DEMO_ENA := $(BIN)/python scripts/rnaseq/demo_ena.py examples/rnaseq --
demo: setup
	@echo "== running every enabled workflow with profiles/local (progress: 'N of M steps')"
	$(DEMO_ENA) $(SNAKEMAKE) --profile profiles/local
	$(DEMO_ENA) $(SNAKEMAKE) --profile profiles/local --report results/report.html
	$(BIN)/python scripts/demo_summary.py

lint: setup
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/ruff check scripts tests bench
	$(BIN)/ruff format --check scripts tests bench
	tests/lint_check.sh $(SNAKEMAKE)

test: lint testdeps
	HPCPIPE_REQUIRE_SLURM=1 $(BIN)/python -m pytest $(PYTEST_ARGS) tests

clean:
	rm -rf results logs benchmarks .snakemake .make examples
