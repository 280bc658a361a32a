# Everything a fresh Debian 12 machine needs, installed by the targets that need it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := skopeo docker-registry
BENCH_APT_PACKAGES := wrk

.PHONY: help deps venv lint typecheck test demo loadtest bench clean

help:
	@echo "make demo   - copy a generated image from a local 'ECR' to two local 'OCIR regions'"
	@echo "make test   - install what is needed, then lint, type-check and run the whole suite"
	@echo "make loadtest - a bounded load run against the demo set-up"
	@echo "make bench  - benchmarks against skopeo; results go to bench/RESULTS.md"

deps:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(BIN)/activate

venv: $(BIN)/activate

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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache bench/.work
