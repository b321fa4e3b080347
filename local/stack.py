"""`make dev`: the whole system on this machine, with no AWS and no Docker.

It starts a local DynamoDB (moto), the Bedrock double, every function of `functions/catalog.py`
as worker processes on local Runtime APIs (streaming ones through the real exec wrapper), a
Function URL per streaming function, and the API Gateway front door that also serves the local
token issuer. It writes `.local/outputs.json` and `.local/sam-env.json` (CONTRACT.md section 4).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from functions.catalog import FUNCTIONS, FunctionDefinition, function_name_variable, url_variable
from local.api_gateway import ApiGatewayServer, Authorizer
from local.bedrock_double import BedrockDouble
from local.demo import seed_demo
from local.dynamodb import LocalDynamoDb
from local.function_url import FunctionUrlServer
from local.functions import REPO_ROOT, FunctionRuntime, FunctionSpec, LocalFunction
from local.issuer import LOCAL_CLIENT_ID, LocalIssuer
from local.lambda_api import LambdaApiServer
from local.model_responders import local_coach_responder
from local.processes import free_port
from shared.http.auth import AuthSettings, JwksCache, TokenVerifier, bearer_token
from shared.store.schema import TABLE_NAME_ENV

logger = logging.getLogger("local.stack")

STATE_DIR = REPO_ROOT / ".local"
TABLE_NAME = "coach-stream-local"
UPLOADS_BUCKET = "coach-stream-local-uploads"


@dataclass(frozen=True)
class StackPorts:
    api: int = 3000
    dynamodb: int = 3003
    bedrock: int = 3004
    lambda_api: int = 3005
    function_urls: dict[str, int] = field(
        default_factory=lambda: {f.name: f.local_port for f in FUNCTIONS if f.local_port is not None}
    )

    @classmethod
    def ephemeral(cls, definitions: tuple[FunctionDefinition, ...] = FUNCTIONS) -> StackPorts:
        """Free ports for tests, so they never collide with a running `make dev`."""
        urls = {f.name: free_port() for f in definitions if f.streaming}
        return cls(
            api=free_port(),
            dynamodb=free_port(),
            bedrock=free_port(),
            lambda_api=free_port(),
            function_urls=urls,
        )


class LocalStack:
    def __init__(
        self,
        ports: StackPorts | None = None,
        state_dir: Path = STATE_DIR,
        definitions: tuple[FunctionDefinition, ...] = FUNCTIONS,
        concurrency: int = 3,
        extra_environment: dict[str, str] | None = None,
        model: str | None = None,
        model_speed: float = 1.0,
        runtimes: dict[str, FunctionRuntime] | None = None,
    ) -> None:
        self.ports = ports or StackPorts()
        self.state_dir = state_dir
        self.definitions = definitions
        self.concurrency = concurrency
        self.extra_environment = dict(extra_environment or {})
        self.model = model or os.environ.get("COACH_LOCAL_MODEL", "double")
        if self.model not in ("double", "bedrock", "openai"):
            raise ValueError("COACH_LOCAL_MODEL must be double, bedrock or openai")
        self.issuer_url = f"http://127.0.0.1:{self.ports.api}/local-user-pool"
        self.issuer = LocalIssuer.load_or_create(state_dir, issuer=self.issuer_url)
        self.dynamodb = LocalDynamoDb(self.ports.dynamodb)
        self.bedrock: BedrockDouble | None = None
        if self.model == "double":
            self.bedrock = BedrockDouble(self.ports.bedrock, responder=local_coach_responder(model_speed))
        self.functions: dict[str, LocalFunction] = {}
        self.function_urls: dict[str, FunctionUrlServer] = {}
        self.api: ApiGatewayServer | None = None
        self.lambda_api: LambdaApiServer | None = None
        self.demo: dict[str, str] = {}
        self.runtimes = dict(runtimes or {})  # catalog name -> the code and interpreter it runs on

    def model_description(self) -> str:
        if self.bedrock is not None:
            return f"Bedrock double (scripted coach replies, no AWS) at {self.bedrock.url}"
        if self.model == "bedrock":
            return "real Amazon Bedrock with your AWS credentials (COACH_LOCAL_MODEL=bedrock)"
        return f"OpenAI-compatible endpoint {os.environ.get('OPENAI_BASE_URL', '?')} (COACH_LOCAL_MODEL=openai)"

    def allowed_origins(self) -> tuple[str, ...]:
        """The demo page is served by the API front door; browsers may call the Function URLs from it."""
        return (self.url(self.ports.api), f"http://localhost:{self.ports.api}")

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def environment(self) -> dict[str, str]:
        """What every function sees locally; in AWS the CDK stack sets the same names."""
        env = {
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            "AWS_ENDPOINT_URL_S3": self.dynamodb.endpoint,  # moto's server answers every service
            "AWS_ENDPOINT_URL_LAMBDA": self.url(self.ports.lambda_api),
            TABLE_NAME_ENV: TABLE_NAME,
            "UPLOADS_BUCKET": UPLOADS_BUCKET,
            "JWT_ISSUER": self.issuer_url,
            "JWT_AUDIENCE": LOCAL_CLIENT_ID,
            "API_URL": self.url(self.ports.api),
            "STREAMING_ENABLED": "true",
            "STREAMING_PERCENTAGE": "100",
            "RATE_LIMIT_PER_MINUTE": "60",
            "STREAM_TIME_BUDGET_SECONDS": "120",
            "POWERTOOLS_SERVICE_NAME": "coach-stream",
            "POWERTOOLS_METRICS_NAMESPACE": "CoachStream",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        for definition in self.definitions:
            env[function_name_variable(definition.name)] = definition.name
            if definition.streaming and definition.url_output_key:
                env[url_variable(definition.url_output_key)] = self.url(self.ports.function_urls[definition.name])
        if self.bedrock is not None:
            env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = self.bedrock.url
        else:
            env.update(_model_passthrough(self.model))
        return {**env, **self.extra_environment}

    def start(self) -> LocalStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.dynamodb.start()
        self.dynamodb.create_table(TABLE_NAME)
        self.dynamodb.create_bucket(UPLOADS_BUCKET)
        if self.bedrock is not None:
            self.bedrock.start()
        env = {**_inherited_environment(), **self.environment()}
        for definition in self.definitions:
            spec = FunctionSpec(
                name=definition.name,
                handler=definition.handler,
                streaming=definition.streaming,
                environment=dict(definition.extra_environment),
                timeout_seconds=definition.timeout_seconds,
                memory_mb=definition.memory_mb,
                concurrency=self.concurrency if definition.streaming else min(2, self.concurrency),
                **self.runtimes.get(definition.name, FunctionRuntime()).spec_fields(),
            )
            self.functions[definition.name] = LocalFunction(spec, env).start()
        self.lambda_api = LambdaApiServer(self.functions, port=self.ports.lambda_api).start()
        for definition in self.definitions:
            if definition.streaming:
                port = self.ports.function_urls[definition.name]
                self.function_urls[definition.name] = FunctionUrlServer(
                    self.functions[definition.name], port, allowed_origins=self.allowed_origins()
                ).start()
        self.api = ApiGatewayServer(
            self.ports.api,
            http_api_authorizer(self.issuer),
            self.issuer.jwks,
            urlsplit(self.issuer_url).path,
            demo=lambda: {**self.outputs(), "token": self.issuer.mint(self.demo["userId"])},
        )
        for definition in self.definitions:
            for route in definition.api_routes:
                self.api.add_route(route, self.functions[definition.name], authorized=True)
            for route in definition.public_routes:
                self.api.add_route(route, self.functions[definition.name], authorized=False)
        self.api.start()
        self.demo = seed_demo(self.dynamodb.resource().Table(TABLE_NAME))
        for function in self.functions.values():
            if not function.wait_ready(60):
                raise RuntimeError(f"{function.spec.name} did not start: see its output above")
        self._write_outputs()
        return self

    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {"apiUrl": f"http://127.0.0.1:{self.ports.api}"}
        for definition in self.definitions:
            if definition.url_output_key and definition.name in self.function_urls:
                outputs[definition.url_output_key] = self.function_urls[definition.name].url
        outputs["issuer"] = self.issuer_url
        if self.demo:
            outputs["demo"] = dict(self.demo)
        return outputs

    def sam_environment(self) -> dict[str, dict[str, str]]:
        """`sam local invoke --env-vars` format: shared values under Parameters, then per function."""
        shared = self.environment()
        per_function = {d.logical_id: {**shared, **d.extra_environment} for d in self.definitions}
        return {"Parameters": shared, **per_function}

    def _write_outputs(self) -> None:
        (self.state_dir / "outputs.json").write_text(json.dumps(self.outputs(), indent=2) + "\n")
        (self.state_dir / "sam-env.json").write_text(json.dumps(self.sam_environment(), indent=2) + "\n")

    def stop(self) -> None:
        for server in [*self.function_urls.values(), self.api]:
            if server is not None:
                server.shutdown()
                server.server_close()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        if self.bedrock is not None:
            self.bedrock.stop()
        for function in self.functions.values():
            function.stop()
        self.dynamodb.stop()


def http_api_authorizer(issuer: LocalIssuer) -> Authorizer:
    """What the HTTP API JWT authorizer checks: signature, issuer, audience or client id, expiry.

    It does not care about `token_use` or our user-id claim; the functions check those themselves.
    """
    settings = AuthSettings(
        issuer=issuer.issuer,
        audiences=frozenset({issuer.client_id}),
        token_uses=frozenset({"id", "access"}),
        user_id_claim="sub",
    )
    verifier = TokenVerifier(settings, JwksCache(settings.jwks_url, fetch=lambda _url: issuer.jwks()))

    def authorize(authorization: str | None) -> dict[str, Any]:
        return dict(verifier.verify(bearer_token(authorization)).claims)

    return authorize


def _try_it(outputs: dict[str, Any]) -> str:
    demo = outputs.get("demo") or {}
    if not demo or "coachConversationStreamUrl" not in outputs:
        return "mint a token:  .venv/bin/python -m local token --user-id <userId>"
    path = f"/users/{demo['userId']}/coaches/{demo['coachId']}/conversations/{demo['conversationId']}"
    return (
        "\ntry it:\n"
        f"  TOKEN=$(.venv/bin/python -m local token --user-id {demo['userId']})\n"
        f"  curl -N -X POST {outputs['coachConversationStreamUrl']}{path}/stream \\\n"
        '    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\\n'
        """    -d '{"userResponse": "I did 5x5 squats at 100kg today, how should I progress?"}'\n"""
        f'  curl -s {outputs["apiUrl"]}{path} -H "Authorization: Bearer $TOKEN"\n'
    )


def _model_passthrough(model: str) -> dict[str, str]:
    """A real model endpoint: the developer's own settings reach the functions, nothing else does."""
    names = ["MODEL_ID_REPLY", "MODEL_ID_SIDE"]
    if model == "bedrock":
        names += [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_REGION",
        ]
    else:
        names += ["OPENAI_BASE_URL", "OPENAI_API_KEY"]
    env = {name: os.environ[name] for name in names if name in os.environ}
    if model == "openai":
        env["MODEL_PROVIDER"] = "openai"
    return env


def _inherited_environment() -> dict[str, str]:
    """Only what a process needs to run from this machine: no developer credentials leak in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k in keep}


def main(args: argparse.Namespace | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.monotonic()
    ephemeral = bool(args and args.ephemeral_ports)
    state_dir = Path(args.state_dir) if args else STATE_DIR
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stack = LocalStack(StackPorts.ephemeral() if ephemeral else StackPorts(), state_dir)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    outputs = stack.outputs()
    print(f"\ncoach-stream local stack is up ({time.monotonic() - started:.1f}s)", flush=True)
    for key, value in outputs.items():
        print(f"  {key:28} {value}")
    print(f"  {'dynamodb + s3 (moto)':28} {stack.dynamodb.endpoint}")
    print(f"  {'model':28} {stack.model_description()}")
    print(f"  {'demo page':28} {outputs['apiUrl']}/demo/")
    print(f"\nwrote {stack.state_dir / 'outputs.json'} and {stack.state_dir / 'sam-env.json'}")
    print(_try_it(outputs))
    print("Ctrl-C stops everything.\n", flush=True)
    stopped.wait()
    print("stopping...", flush=True)
    stack.stop()
    print("stopped.", flush=True)
