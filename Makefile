# coach-stream: every command a person or CI needs. `make dev` and `make test` set themselves up.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup dev dev-llm test test-unit test-integration bench lint format synth deploy clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the dev requirements (idempotent)

dev: setup ## run the local stack: Function URLs on :3001/:3002, the API on :3000
	$(PY) -m local dev

dev-llm: setup ## the same stack with a real local model (SmolLM2-135M via llama.cpp; builds on first use)
	$(PY) -m local dev --model llama

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

synth: setup ## cdk synth with the pinned CLI (package-lock.json), offline: templates and assets in cdk.out/
	npm ci --prefer-offline --no-audit --no-fund --loglevel=error
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1 \
		npx --no-install cdk synth --quiet --no-notices

deploy: synth ## cdk deploy every stack from cdk.out (AWS credentials; `cdk bootstrap` once per account and Region)
	mkdir -p .local
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=1 \
		npx --no-install cdk deploy --all --app cdk.out --no-notices --require-approval broadening \
		--outputs-file .local/cdk-outputs.json
	$(PY) -m infra.outputs .local/cdk-outputs.json .local/deployed-outputs.json

clean:
	rm -rf $(VENV) .local cdk.out node_modules .pytest_cache .ruff_cache
