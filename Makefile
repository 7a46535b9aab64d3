# `make run` and `make test` each do the whole set-up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint bench fuzz clean

$(STAMP): requirements.txt requirements-demo.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The Node interoperability tests' `jose` and `@hpke` packages, when npm is there (they skip
# without node).
JS_STAMP := tests/js/node_modules/.installed-stamp
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json
	if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/js --no-audit --no-fund && touch $@; fi

install: $(STAMP)

## Serve the sealed demo model on http://$(HOST):$(PORT) (creates the demo instance first).
run: $(STAMP)
	$(BIN)/flask --app wsgi demo init
	TORCHGATE_BIND=$(HOST):$(PORT) TORCHGATE_LOG_FORMAT=text $(BIN)/gunicorn wsgi:app

## Lint, then the whole test suite.
test: $(STAMP) $(JS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The property tests as a longer fuzz run (make test runs them bounded, and bandit).
fuzz: $(STAMP)
	TORCHGATE_FUZZ_EXAMPLES=$${TORCHGATE_FUZZ_EXAMPLES:-20000} $(BIN)/python -m pytest \
		-p no:cacheprovider --timeout=0 --hypothesis-show-statistics tests/security/test_properties.py \
		tests/security/test_parser_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/security_path.py
	$(BIN)/python benchmarks/sealed_load.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
