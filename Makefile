# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup redis-server chromium iproute2 flower demo test test-chaos lint bench clean

setup: $(VENV)/.installed redis-server

# The runtime (homeshots) and, beside it, the sandbox package the demo and the tests use; the sandbox is
# its own distribution (sandbox/pyproject.toml), never in homeshots' wheel or image.
$(VENV)/.installed: pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]" -e ./sandbox
	touch $@

# redis-server from Debian's packages when it is not on PATH (the embedded default and the tests start their own).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# Debian's chromium: the run report's test opens the page headless.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# iproute2 (`ip netns`, veth pairs, a bridge): the multi-host chaos run makes its worker hosts as network namespaces.
iproute2:
	@command -v ip >/dev/null 2>&1 || { \
	  echo "installing iproute2 (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq iproute2 >/dev/null; }

flower: setup
	$(BIN)/homeshots flower

demo: setup
	$(BIN)/homeshots-sandbox demo

# ruff (lint and format) and the import contract: packages import only the layers below them.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: setup chromium lint
	$(BIN)/pytest -q

test-chaos: setup iproute2
	$(BIN)/pytest -q -m chaos

# Every benchmark in benchmarks/ (dedup index and quality, state O(1), memory, submission, throughput,
# side by side with img2dataset, which it installs into its own virtualenv under ~/.cache/homeshots-bench):
# numbers and ratios against baselines measured in the same run; see benchmarks/RESULTS.md.
bench: setup
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) homeshots-data .pytest_cache .ruff_cache
