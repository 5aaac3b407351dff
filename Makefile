# serverless-pypi: two commands on a fresh machine.
#   make serve   set up .venv and serve ./packages at http://127.0.0.1:8080/simple/
#   make test    set up .venv with the test extras and run ruff, mypy and the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= packages
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: serve test lint typecheck pytest bench lambda clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[server]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-serve

serve: $(VENV)/.installed-serve
	mkdir -p $(STORE)
	$(BIN)/serverless-pypi serve --store $(STORE) --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test: lint typecheck pytest

clean:
	rm -rf $(VENV) dist build .mypy_cache .pytest_cache .ruff_cache
