# Everything a fresh Debian 12 machine needs, installed by the targets that need it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# prometheus: its promtool checks the alert rules and the dashboard queries (tests/test_monitoring.py)
# postgresql: the shared job store's tests start a real server (tests/support/postgres.py).
APT_PACKAGES := skopeo docker-registry prometheus postgresql
BENCH_APT_PACKAGES := wrk iproute2

.PHONY: help deps venv lock lint typecheck test demo loadtest bench clean

help:
	@echo "make demo   - copy a generated image from a local 'ECR' to two local 'OCIR regions'"
	@echo "make test   - install what is needed, then lint, type-check and run the whole suite"
	@echo "make loadtest - a bounded load run against the demo set-up"
	@echo "make bench  - benchmarks against skopeo; results go to bench/RESULTS.md"
	@echo "make lock   - re-resolve requirements.lock and requirements-dev.lock from pyproject.toml"

deps:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The venv is exactly the dev lock (runtime + oci + dev tools, every file hash-checked),
# then the project itself without dependencies. It is made anew whenever the lock or
# pyproject.toml changes, so nothing outside the lock lingers in it.
$(BIN)/activate: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $(BIN)/activate

venv: $(BIN)/activate

# requirements.lock: what the image ships (runtime + the oci extra); requirements-dev.lock:
# the same pins plus the dev tools (resolved under requirements.lock as a constraint).
# Existing pins are kept unless pyproject.toml needs otherwise; LOCK_FLAGS=--upgrade
# moves every pin to the newest allowed release.
LOCK := $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes \
	--python-version 3.11 --python-platform linux --custom-compile-command 'make lock' $(LOCK_FLAGS)

lock: | $(BIN)/uv
	$(LOCK) --extra oci --output-file requirements.lock
	$(LOCK) --extra oci --extra dev --constraint requirements.lock --output-file requirements-dev.lock

# uv comes with the dev lock; a venv of any age will do to re-resolve it.
$(BIN)/uv:
	@$(MAKE) --no-print-directory venv

lint: venv
	$(BIN)/ruff check src tests bench demo
	$(BIN)/ruff format --check src tests bench demo

typecheck: venv
	$(BIN)/mypy

test: deps venv lint typecheck
	$(BIN)/pytest

demo: deps venv
	$(BIN)/python -m demo.service_demo

loadtest: deps venv
	$(BIN)/python -m demo.loadtest

bench: deps venv
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(BENCH_APT_PACKAGES)"
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.intake
	@if [ "$$(id -u)" = 0 ]; then $(BIN)/python -m bench.shaped && $(BIN)/python -m bench.restart; \
	else echo "bench.shaped and bench.restart skipped: shaped links need root (network namespaces, tc)"; fi
	$(BIN)/python -m bench.shared_store

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bench/.work
