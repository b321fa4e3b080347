# coach-stream: every command a person or CI needs. `make dev` and `make test` set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CDK_VERSION := 2.1033.0
STAMP := $(VENV)/.installed

.PHONY: setup dev test test-unit test-integration bench lint format synth deploy clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the dev requirements (idempotent)

dev: setup ## run the local stack: Function URLs on :3001/:3002, the API on :3000
	$(PY) -m local dev

test: setup ## lint, then every test suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

bench: setup ## print latency and throughput figures (adapter vs. a FastAPI + uvicorn reference)
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .local cdk.out node_modules .pytest_cache .ruff_cache
