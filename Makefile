# serverless-pypi: two commands on a fresh machine.
#   make serve   set up .venv and serve ./packages at http://127.0.0.1:8080/simple/
#   make test    set up .venv with the test extras and run ruff, the import contract, mypy,
#                the Terraform checks, the Lambda zip and the whole suite
#   make bench   set up .venv with the bench extras, run the benchmarks (about 15 minutes)
#                and write docs/benchmarks.md with its plots
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STORE  ?= packages
HOST   ?= 127.0.0.1
PORT   ?= 8080
# checkov has heavy dependencies: it gets a virtual environment of its own
CHECKOV_VENV    ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30

.PHONY: serve test lint typecheck checkov pytest bench lambda lambda-lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# the package's metadata (its version, read from __init__.py) is rebuilt when either changes
META := pyproject.toml src/serverless_pypi/__init__.py

$(VENV)/.installed-serve: $(META) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(META) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-serve

serve: $(VENV)/.installed-serve
	mkdir -p $(STORE)
	$(BIN)/serverless-pypi serve --store $(STORE) --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 --dist loadgroup

$(VENV)/.installed-bench: $(META) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.installed-serve

# wrk is the load generator when it can be installed (root with apt-get); else a Python one
bench: $(VENV)/.installed-bench
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -qq wrk >/dev/null 2>&1 \
		     || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }; } \
		|| echo "bench: wrk not installed; the Python load generator will be used"
	$(BIN)/python -m bench

# dist/lambda.zip: the code of both Lambda functions (reproducible; see scripts/build_lambda.py)
lambda: $(VENV)/.installed-serve
	$(BIN)/python scripts/build_lambda.py --output dist/lambda.zip

# scripts/lambda-requirements.txt, resolved from pyproject.toml for the Lambda target (needs the
# package index); keeps the pinned versions, or takes the newest with UPGRADE=1
lambda-lock: $(VENV)/.installed-test
	$(BIN)/python scripts/lock_lambda.py $(if $(UPGRADE),--upgrade)

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

# the Terraform module's static checks; every skipped check is justified beside its resource
checkov: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
	$(CHECKOV_VENV)/bin/checkov --directory terraform --framework terraform --compact --quiet --skip-download

test: lint typecheck checkov lambda pytest

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) dist build .mypy_cache .pytest_cache .ruff_cache
