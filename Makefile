# The README's two commands: `make demo` runs the main job, `make test` runs every test.
# Both install what they need: Debian packages (apt-get, only the missing ones) and a local venv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.kdiag-installed
APT_LISTS := scripts/apt-packages.txt

.PHONY: test demo deps apt lint fmt typecheck pytest clean

apt:
	@bash scripts/ensure-apt.sh $(APT_LISTS)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,test]'
	@touch $@

deps: apt $(STAMP)

lint: deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

fmt: deps
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

typecheck: deps
	$(VENV)/bin/mypy src/kdiag

pytest: deps
	bash scripts/pg-throwaway.sh $(VENV)/bin/pytest

test: lint typecheck pytest

demo: deps
	@bash scripts/demo.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
