# opsready.operations: every entry point a person or CI uses. Each target sets itself up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest -p no:cacheprovider
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup setup-test demo test lint package sanity units integration fidelity molecule bench faults build clean

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

## The main job on the embedded default (SQLite + local files on this machine).
demo: setup
	@bash scripts/demo.sh

## Every test layer; fails when any fails.
test: setup-test
	@bash scripts/test.sh

lint: setup-test
	@bash scripts/test.sh lint

package: setup-test
	@bash scripts/test.sh package

fidelity: setup-test
	@bash scripts/test.sh fidelity

sanity: setup-test
	@bash scripts/test.sh sanity

units: setup-test
	@bash scripts/test.sh units

integration: setup-test
	@bash scripts/test.sh integration

molecule: setup-test
	@bash scripts/test.sh molecule

bench: setup-test
	@$(PY) bench/run_all.py

faults: setup-test
	@$(PY) -m pytest -p no:cacheprovider tests/faults -q

build: setup
	@mkdir -p build/dist && $(VENV)/bin/ansible-galaxy collection build --force --output-path build/dist .

clean:
	rm -rf build reports tests/output .pytest_cache .ruff_cache .mypy_cache
