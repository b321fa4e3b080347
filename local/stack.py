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

from functions.catalog import FUNCTIONS, FunctionDefinition
from local.api_gateway import ApiGatewayServer, Authorizer
from local.dynamodb import LocalDynamoDb
from local.function_url import FunctionUrlServer
from local.functions import REPO_ROOT, FunctionSpec, LocalFunction
from local.issuer import LOCAL_CLIENT_ID, LocalIssuer
from local.processes import free_port
from shared.http.auth import AuthSettings, JwksCache, TokenVerifier, bearer_token
from shared.store.schema import TABLE_NAME_ENV

logger = logging.getLogger("local.stack")

STATE_DIR = REPO_ROOT / ".local"
TABLE_NAME = "coach-stream-local"


@dataclass(frozen=True)
class StackPorts:
    api: int = 3000
    dynamodb: int = 3003
    function_urls: dict[str, int] = field(
        default_factory=lambda: {f.name: f.local_port for f in FUNCTIONS if f.local_port is not None}
    )

    @classmethod
    def ephemeral(cls, definitions: tuple[FunctionDefinition, ...] = FUNCTIONS) -> StackPorts:
        """Free ports for tests, so they never collide with a running `make dev`."""
        urls = {f.name: free_port() for f in definitions if f.streaming}
        return cls(api=free_port(), dynamodb=free_port(), function_urls=urls)


class LocalStack:
    def __init__(
        self,
        ports: StackPorts | None = None,
        state_dir: Path = STATE_DIR,
        definitions: tuple[FunctionDefinition, ...] = FUNCTIONS,
        concurrency: int = 3,
        extra_environment: dict[str, str] | None = None,
    ) -> None:
        self.ports = ports or StackPorts()
        self.state_dir = state_dir
        self.definitions = definitions
        self.concurrency = concurrency
        self.extra_environment = dict(extra_environment or {})
        self.issuer_url = f"http://127.0.0.1:{self.ports.api}/local-user-pool"
        self.issuer = LocalIssuer.load_or_create(state_dir, issuer=self.issuer_url)
        self.dynamodb = LocalDynamoDb(self.ports.dynamodb)
        self.functions: dict[str, LocalFunction] = {}
        self.function_urls: dict[str, FunctionUrlServer] = {}
        self.api: ApiGatewayServer | None = None

    def environment(self) -> dict[str, str]:
        """What every function sees locally; in AWS the CDK stack sets the same names."""
        return {
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            TABLE_NAME_ENV: TABLE_NAME,
            "JWT_ISSUER": self.issuer_url,
            "JWT_AUDIENCE": LOCAL_CLIENT_ID,
            "POWERTOOLS_SERVICE_NAME": "coach-stream",
            "POWERTOOLS_METRICS_NAMESPACE": "CoachStream",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **self.extra_environment,
        }

    def start(self) -> LocalStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.dynamodb.start()
        self.dynamodb.create_table(TABLE_NAME)
        env = {**_inherited_environment(), **self.environment()}
        for definition in self.definitions:
            spec = FunctionSpec(
                name=definition.name,
                handler=definition.handler,
                streaming=definition.streaming,
                environment=dict(definition.extra_environment),
                timeout_seconds=definition.timeout_seconds,
                memory_mb=definition.memory_mb,
                concurrency=self.concurrency,
            )
            self.functions[definition.name] = LocalFunction(spec, env).start()
        for definition in self.definitions:
            if definition.streaming:
                port = self.ports.function_urls[definition.name]
                self.function_urls[definition.name] = FunctionUrlServer(
                    self.functions[definition.name], port
                ).start()
        self.api = ApiGatewayServer(
            self.ports.api, http_api_authorizer(self.issuer), self.issuer.jwks, urlsplit(self.issuer_url).path
        )
        for definition in self.definitions:
            for route in definition.api_routes:
                self.api.add_route(route, self.functions[definition.name], authorized=True)
            for route in definition.public_routes:
                self.api.add_route(route, self.functions[definition.name], authorized=False)
        self.api.start()
        for function in self.functions.values():
            if not function.wait_ready(30):
                raise RuntimeError(f"{function.spec.name} did not start: see its output above")
        self._write_outputs()
        return self

    def outputs(self) -> dict[str, Any]:
        outputs: dict[str, Any] = {"apiUrl": f"http://127.0.0.1:{self.ports.api}"}
        for definition in self.definitions:
            if definition.url_output_key and definition.name in self.function_urls:
                outputs[definition.url_output_key] = self.function_urls[definition.name].url
        outputs["issuer"] = self.issuer_url
        return outputs

    def sam_environment(self) -> dict[str, dict[str, str]]:
        """`sam local invoke --env-vars` format: shared values under Parameters, then per function."""
        shared = self.environment()
        per_function = {d.name: {**shared, **d.extra_environment} for d in self.definitions}
        return {"Parameters": shared, **per_function}

    def _write_outputs(self) -> None:
        (self.state_dir / "outputs.json").write_text(json.dumps(self.outputs(), indent=2) + "\n")
        (self.state_dir / "sam-env.json").write_text(json.dumps(self.sam_environment(), indent=2) + "\n")

    def stop(self) -> None:
        for server in [*self.function_urls.values(), *([self.api] if self.api else [])]:
            server.shutdown()
            server.server_close()
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
    print(f"  {'dynamodb':28} {stack.dynamodb.endpoint}")
    print(f"\nwrote {stack.state_dir / 'outputs.json'} and {stack.state_dir / 'sam-env.json'}")
    print("mint a token:  .venv/bin/python -m local token --user-id <userId>")
    print("Ctrl-C stops everything.\n", flush=True)
    stopped.wait()
    print("stopping...", flush=True)
    stack.stop()
    print("stopped.", flush=True)
