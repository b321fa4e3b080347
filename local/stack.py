"""`make dev`: the whole system on this machine, with no AWS and no Docker.

It starts a local DynamoDB (moto, with the table's stream and the dead-letter queues the templates
define), the Bedrock double, every function of `functions/catalog.py` as worker processes on local
Runtime APIs (streaming ones through the real exec wrapper), a poller per event source mapping of the
templates (`local/event_source_mapping.py`), a Function URL per streaming function, and the API Gateway
front door that also serves the local token issuer. It writes `.local/outputs.json` and
`.local/sam-env.json` (CONTRACT.md section 4).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from functions.catalog import FUNCTIONS, FunctionDefinition, function_name_variable, url_variable
from infra.catalog_rules import routes
from local.api_gateway import ApiGatewayServer, Authorizer
from local.appconfig_double import AppConfigDataDouble, serve_flags
from local.appconfig_profile import local_reference
from local.bedrock_double import BedrockDouble
from local.demo import seed_demo
from local.deployed import (
    LOCAL_ACCOUNT,
    LOCAL_REGION,
    TASK_ROOT,
    DeployedApp,
    DeployedFunction,
    LocalResolver,
    TemplateError,
    synthesize,
)
from local.dynamodb import LocalDynamoDb
from local.event_source_mapping import EventSourceMapping, StreamPoller
from local.function_url import FunctionUrlServer
from local.functions import REPO_ROOT, FunctionRuntime, FunctionSpec, LocalFunction
from local.iam_gate import AwsCall, CallLog, IamGate
from local.issuer import LOCAL_CLIENT_ID, LocalIssuer
from local.lambda_api import AsyncInvokeConfig, LambdaApiServer, run_invocation
from local.llama_server import DESCRIPTION as LLAMA_DESCRIPTION
from local.llama_server import MODEL_ALIAS as LLAMA_MODEL_ALIAS
from local.llama_server import LlamaServer
from local.llama_server import install as install_llama
from local.model_responders import local_coach_responder
from local.processes import free_port
from shared.http.auth import AuthSettings, JwksCache, TokenVerifier, bearer_token
from shared.store.schema import TABLE_NAME_ENV

logger = logging.getLogger("local.stack")

OVERRIDES_FILE = REPO_ROOT / "local.env"

STATE_DIR = REPO_ROOT / ".local"
TABLE_NAME = "coach-stream-local"
UPLOADS_BUCKET = "coach-stream-local-uploads"


@dataclass(frozen=True)
class StackPorts:
    api: int = 3000
    dynamodb: int = 3003
    bedrock: int = 3004
    lambda_api: int = 3005
    appconfig: int = 3006
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
            appconfig=free_port(),
            function_urls=urls,
        )


class LocalStack:
    def __init__(
        self,
        ports: StackPorts | None = None,
        state_dir: Path = STATE_DIR,
        definitions: tuple[FunctionDefinition, ...] = FUNCTIONS,
        concurrency: int = 10,
        prewarmed: int = 1,
        environment_concurrency: int | None = None,
        function_output: Path | None = None,
        extra_environment: dict[str, str] | None = None,
        model: str | None = None,
        model_speed: float = 1.0,
        runtimes: dict[str, FunctionRuntime] | None = None,
        deploy_environ: Mapping[str, str] | None = None,
        overrides_file: Path | None = OVERRIDES_FILE,
    ) -> None:
        self.ports = ports or StackPorts()
        self.state_dir = state_dir
        self.definitions = definitions
        self.concurrency = concurrency  # each function's most environments; Lambda throttles past it
        self.prewarmed = prewarmed
        self.environment_concurrency = environment_concurrency  # for streaming functions; None: the templates'

        self.function_output = function_output  # one file for every function's log; None: this console
        self.extra_environment = dict(extra_environment or {})
        self.model = model or os.environ.get("COACH_LOCAL_MODEL", "double")
        if self.model not in ("double", "bedrock", "openai", "llama"):
            raise ValueError("COACH_LOCAL_MODEL must be double, bedrock, openai or llama")
        self.issuer_url = f"http://127.0.0.1:{self.ports.api}/local-user-pool"
        self.issuer = LocalIssuer.load_or_create(state_dir, issuer=self.issuer_url)
        self.dynamodb = LocalDynamoDb(self.ports.dynamodb)
        self.bedrock: BedrockDouble | None = None
        self.appconfig: AppConfigDataDouble | None = None  # the templates' AppConfig profile, once started
        if self.model == "double":
            self.bedrock = BedrockDouble(self.ports.bedrock, responder=local_coach_responder(model_speed))
        # A real model behind the functions' OpenAI-compatible adapter: llama.cpp with SmolLM2-135M.
        self.llama = LlamaServer(log_path=state_dir / "llama-server.log") if self.model == "llama" else None
        self.functions: dict[str, LocalFunction] = {}
        self.function_urls: dict[str, FunctionUrlServer] = {}
        self.api: ApiGatewayServer | None = None
        self.lambda_api: LambdaApiServer | None = None
        self.stream_pollers: list[StreamPoller] = []
        self.demo: dict[str, str] = {}
        self.runtimes = dict(runtimes or {})  # catalog name -> the code and interpreter it runs on
        # What `cdk synth` would read from the shell (deploy settings such as STREAM_TIME_BUDGET_SECONDS).
        self.deploy_environ = dict(os.environ if deploy_environ is None else deploy_environ)
        if self.ports.api != StackPorts().api:
            # The demo page's origin moved with the port: the Function URLs must allow it, as a deploy would.
            self.deploy_environ.setdefault("ALLOWED_ORIGINS", ",".join(self.allowed_origins()))
        self.overrides = developer_overrides(definitions, self.deploy_environ, overrides_file)
        self.deployed: DeployedApp | None = None
        self.synth_note = ""
        self.iam: IamGate | None = None

    def model_description(self) -> str:
        if self.bedrock is not None:
            return f"Bedrock double (scripted coach replies, no AWS) at {self.bedrock.url}"
        if self.llama is not None:
            return f"{LLAMA_DESCRIPTION} at {self.llama.url} (COACH_LOCAL_MODEL=llama)"
        if self.model == "bedrock":
            return "real Amazon Bedrock with your AWS credentials (COACH_LOCAL_MODEL=bedrock)"
        endpoint = self.deploy_environ.get("OPENAI_BASE_URL", "?")
        return f"OpenAI-compatible endpoint {endpoint} (COACH_LOCAL_MODEL=openai)"

    def allowed_origins(self) -> tuple[str, ...]:
        """The demo page is served by the API front door; browsers may call the Function URLs from it."""
        return (self.url(self.ports.api), f"http://localhost:{self.ports.api}")

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def sdk_environment(self, function_name: str) -> dict[str, str]:
        """What Lambda and the SDK provide rather than the template: the Region, the role's credentials
        (locally, a key id that names the function, so the local services know the caller) and, only
        here, where each service is."""
        env = {
            "AWS_REGION": LOCAL_REGION,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "AWS_ACCESS_KEY_ID": function_name,
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            "AWS_ENDPOINT_URL_S3": self.dynamodb.endpoint,  # moto's server answers every service
            "AWS_ENDPOINT_URL_LAMBDA": self.url(self.ports.lambda_api),
        }
        if self.appconfig is not None:
            env["AWS_ENDPOINT_URL_APPCONFIGDATA"] = self.appconfig.url
        if self.bedrock is not None:
            env["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = self.bedrock.url
        else:
            env.update(_model_credentials(self.model, self.deploy_environ))
        return env

    def resource_values(self) -> dict[str, str]:
        """The local value of each variable whose template value is a resource reference."""
        urls = {
            url_variable(d.url_output_key): self.url(self.ports.function_urls[d.name])
            for d in self.definitions
            if d.streaming and d.url_output_key
        }
        values = {
            TABLE_NAME_ENV: TABLE_NAME,
            "UPLOADS_BUCKET": UPLOADS_BUCKET,
            "JWT_ISSUER": self.issuer_url,
            "JWT_AUDIENCE": LOCAL_CLIENT_ID,
            "API_URL": self.url(self.ports.api),
            **urls,
        }
        assert set(values) == set(resource_variables(self.definitions))
        return values

    def template_environment(self, catalog_name: str) -> dict[str, str]:
        """The function's environment exactly as its template gives it, resource references resolved."""
        assert self.deployed is not None, "start() synthesizes the templates"
        deployed = self.deployed.function(catalog_name)
        resources = self.resource_values()
        task_root = self.runtimes.get(catalog_name, FunctionRuntime()).task_root
        env: dict[str, str] = {}
        for name, value in deployed.environment.items():
            if isinstance(value, str):
                env[name] = value.replace(TASK_ROOT, str(task_root), 1) if value.startswith(TASK_ROOT + "/") else value
            elif name in resources:
                env[name] = resources[name]
            else:
                raise TemplateError(f"{deployed.name}: {name} references {value!r}, unknown to the local stack")
        return env

    def _environment_concurrency(self, deployed: DeployedFunction) -> int:
        """The template's (Managed Instances or not), unless this stack sets one for streaming functions."""
        if self.environment_concurrency is not None and deployed.streaming:
            return self.environment_concurrency
        return deployed.environment_concurrency

    def function_environment(self, catalog_name: str) -> dict[str, str]:
        """What the function's process gets: its template's environment, then what Lambda provides (the
        SDK endpoints pointing at the local doubles), then the developer's overrides (shown in the banner)."""
        assert self.deployed is not None, "start() synthesizes the templates"
        deployed = self.deployed.function(catalog_name)
        wanted = next(d for d in self.definitions if d.name == catalog_name).settings.variables()
        overrides = {name: value for name, (value, _) in self.overrides.items() if name in wanted}
        return {
            **self.template_environment(catalog_name),
            **self.sdk_environment(deployed.name),
            **overrides,
            **self.model_environment(wanted),
            **self.extra_environment,
        }

    def model_environment(self, wanted: Collection[str]) -> dict[str, str]:
        """What points a function at the chosen model when Bedrock (real or double) does not answer; the
        local model's name replaces the Bedrock ids in the functions that read them."""
        if self.llama is None:
            return _model_overrides(self.model, self.deploy_environ)
        names = {name: LLAMA_MODEL_ALIAS for name in ("MODEL_ID_REPLY", "MODEL_ID_SIDE") if name in wanted}
        return {"MODEL_PROVIDER": "openai", "OPENAI_BASE_URL": self.llama.url, **names}

    def start(self) -> LocalStack:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.llama is not None:
            install_llama()  # quick once installed; the first run on a machine builds llama.cpp
            self.llama.start()
        began = time.monotonic()
        self.deployed = synthesize(self.definitions, self.deploy_environ)
        self.synth_note = f"templates ready in {time.monotonic() - began:.1f}s"
        self.iam = self._iam_gate()
        self.dynamodb.start(environment=self.iam.environment())
        self.dynamodb.create_table(TABLE_NAME, stream_view_type=self.table_stream_view_type())
        self.dynamodb.create_bucket(UPLOADS_BUCKET)
        for name, attributes in self.queues().items():
            self.dynamodb.create_queue(name, attributes)
        if self.bedrock is not None:
            self.bedrock.iam = self.iam
            self.bedrock.start()
        ages = (self.function_environment(d.name).get("FLAGS_MAX_AGE_SECONDS") for d in self.definitions)
        flag_ages = [int(age) for age in ages if age]
        self.appconfig = serve_flags(self.deployed.templates, self.state_dir, self.ports.appconfig, flag_ages)
        # Before the functions: it serves the issuer's keys, which their init fetches as it would from Cognito.
        # Its routes come once the functions exist; until then it answers 404.
        self.api = ApiGatewayServer(
            self.ports.api,
            http_api_authorizer(self.issuer),
            self.issuer.jwks,
            urlsplit(self.issuer_url).path,
            demo=lambda: {**self.outputs(), "token": self.issuer.mint(self.demo["userId"])},
            throttle=self.deployed.http_api_throttle(),  # each route's bucket, as the template's stage
        ).start()
        inherited = _inherited_environment()
        for definition in self.definitions:
            deployed = self.deployed.function(definition.name)
            spec = FunctionSpec(
                name=deployed.name,
                handler=deployed.handler,
                streaming=deployed.streaming,
                environment=self.function_environment(definition.name),
                timeout_seconds=deployed.timeout_seconds,
                memory_mb=deployed.memory_mb,
                concurrency=self.concurrency,
                prewarmed=self.prewarmed,
                environment_concurrency=self._environment_concurrency(deployed),
                log_format=deployed.log_format,
                output=self.function_output,
                runtime=self.runtimes.get(definition.name, FunctionRuntime()),
            )
            self.functions[definition.name] = LocalFunction(spec, inherited).start()
        by_deployed_name = {function.spec.name: function for function in self.functions.values()}
        self.lambda_api = LambdaApiServer(
            by_deployed_name,
            port=self.ports.lambda_api,
            iam=self.iam,
            region=LOCAL_REGION,
            account=LOCAL_ACCOUNT,
            async_configs={config.function_name: config for config in self.async_invoke_configs()},
            sqs_endpoint=self.dynamodb.endpoint,
        ).start()
        for definition in self.definitions:
            if definition.streaming:
                port = self.ports.function_urls[definition.name]
                cors = self.deployed.function(definition.name).url_cors or {}
                self.function_urls[definition.name] = FunctionUrlServer(
                    self.functions[definition.name], port, allowed_origins=tuple(cors.get("AllowOrigins", ()))
                ).start()
        for route in routes(self.definitions):  # the template's: each declared route, then the catch-alls
            self.api.add_route(route.key, self.functions[route.function], authorized=route.authorized)
        self.demo = seed_demo(self.dynamodb.resource().Table(TABLE_NAME))
        for function in self.functions.values():
            if not function.wait_ready(60):
                raise RuntimeError(f"{function.spec.name} did not start: see its output above")
        for mapping in self.event_source_mappings():
            target = by_deployed_name.get(mapping.function_name)
            if target is None:
                raise TemplateError(f"{mapping.logical_id}: {mapping.function_name} is not a function of this stack")
            poller = StreamPoller(
                mapping,
                lambda event, target=target: run_invocation(target, event),
                endpoint=self.dynamodb.endpoint,
                region=LOCAL_REGION,
                account=LOCAL_ACCOUNT,
            )
            self.stream_pollers.append(poller.start())
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

    def _resources_of(self, resource_type: str) -> dict[str, dict[str, Any]]:
        assert self.deployed is not None, "start() synthesizes the templates"
        return {
            logical_id: resource
            for template in self.deployed.templates.values()
            for logical_id, resource in template.get("Resources", {}).items()
            if resource["Type"] == resource_type
        }

    def table_stream_view_type(self) -> str | None:
        """The table's stream as the template defines it: the local table gets the same one."""
        tables = list(self._resources_of("AWS::DynamoDB::Table").values())
        if len(tables) != 1:
            raise TemplateError(f"the templates define {len(tables)} tables; the local stack runs one")
        return (tables[0]["Properties"].get("StreamSpecification") or {}).get("StreamViewType")

    def queues(self) -> dict[str, dict[str, str]]:
        """Every SQS queue of the templates (the stream mappings' dead-letter queues): name -> attributes."""
        found = {}
        for logical_id, resource in self._resources_of("AWS::SQS::Queue").items():
            props = resource["Properties"]
            attributes = {k: str(props[k]) for k in ("MessageRetentionPeriod", "VisibilityTimeout") if k in props}
            if "SqsManagedSseEnabled" in props:
                attributes["SqsManagedSseEnabled"] = "true" if props["SqsManagedSseEnabled"] else "false"
            found[self._queue_name(logical_id)] = attributes
        return found

    def _queue_name(self, logical_id: str) -> str:
        name = self._resources_of("AWS::SQS::Queue")[logical_id]["Properties"].get("QueueName")
        if not isinstance(name, str):
            raise TemplateError(f"{logical_id}: a queue needs a literal QueueName to run locally")
        return name

    def event_source_mappings(self) -> list[EventSourceMapping]:
        """Every event source mapping of the templates, its function, stream and queue resolved to local ones."""
        assert self.deployed is not None, "start() synthesizes the templates"
        resolver = LocalResolver(self.deployed, self._resource_attribute)
        mappings = [
            EventSourceMapping.from_template(logical_id, resource["Properties"], resolver.resolve)
            for logical_id, resource in self._resources_of("AWS::Lambda::EventSourceMapping").items()
        ]
        return [mapping for mapping in mappings if mapping.enabled]

    def async_invoke_configs(self) -> list[AsyncInvokeConfig]:
        """Every `EventInvokeConfig` of the templates (retries, event age, on-failure destination), resolved to
        local functions and queues: how the local Invoke API runs each function's `Event` invocations."""
        assert self.deployed is not None, "start() synthesizes the templates"
        resolver = LocalResolver(self.deployed, self._resource_attribute)
        return [
            AsyncInvokeConfig.from_template(logical_id, resource["Properties"], resolver.resolve)
            for logical_id, resource in self._resources_of("AWS::Lambda::EventInvokeConfig").items()
        ]

    def role_policies(self) -> dict[str, list[dict[str, Any]]]:
        """Each function's synthesized role statements, resolved against the local resources."""
        assert self.deployed is not None, "start() synthesizes the templates"
        resolver = LocalResolver(self.deployed, self._resource_attribute)
        return {f.name: resolver.resolve(f.policy) for f in self.deployed.functions.values()}

    def _resource_attribute(self, resource_type: str, logical_id: str, attribute: str) -> str:
        """What a template's `Ref`/`Fn::GetAtt` of a resource is here (the ones role policies and event source
        mappings name).

        A table's `StreamArn` ends in a label DynamoDB picks when it creates the stream, after the policies
        went to the local services: it resolves to the table's stream with any label (`stream/*`), which
        names exactly the one stream the local table has."""
        assert self.deployed is not None
        account = f"{LOCAL_REGION}:{LOCAL_ACCOUNT}"
        if resource_type == "AWS::SQS::Queue" and attribute in ("Arn", "QueueName"):
            name = self._queue_name(logical_id)
            return f"arn:aws:sqs:{account}:{name}" if attribute == "Arn" else name
        by_type = {
            ("AWS::DynamoDB::Table", "Ref"): TABLE_NAME,
            ("AWS::DynamoDB::Table", "Arn"): f"arn:aws:dynamodb:{account}:table/{TABLE_NAME}",
            ("AWS::DynamoDB::Table", "StreamArn"): f"arn:aws:dynamodb:{account}:table/{TABLE_NAME}/stream/*",
            ("AWS::S3::Bucket", "Ref"): UPLOADS_BUCKET,
            ("AWS::S3::Bucket", "Arn"): f"arn:aws:s3:::{UPLOADS_BUCKET}",
            ("AWS::Logs::LogGroup", "Arn"): f"arn:aws:logs:{account}:log-group:local-{logical_id}:*",
        }
        if resource_type.startswith("AWS::AppConfig::"):
            properties = self._resources_of(resource_type)[logical_id]["Properties"]
            return local_reference(resource_type, properties, attribute)
        if resource_type == "AWS::Lambda::Function":
            name = next(f.name for f in self.deployed.functions.values() if f.logical_id == logical_id)
            return name if attribute == "Ref" else f"arn:aws:lambda:{account}:function:{name}"
        try:
            return by_type[(resource_type, attribute)]
        except KeyError:
            raise TemplateError(f"{resource_type}.{attribute} ({logical_id}) has no local value") from None

    def _iam_gate(self) -> IamGate:
        """Every AWS call a function makes is checked against its synthesized role, with moto's policy
        evaluator, and logged: a call the role would deny in AWS is denied here the same way."""
        policies = self.state_dir / "iam-policies.json"
        policies.write_text(json.dumps(self.role_policies(), indent=1))
        calls = self.state_dir / "aws-calls.jsonl"
        calls.write_text("")
        return IamGate.from_paths(calls=calls, policies=policies)

    def recorded_calls(self) -> list[AwsCall]:
        return CallLog(self.state_dir / "aws-calls.jsonl").read()

    def sam_environment(self) -> dict[str, dict[str, str]]:
        """`sam local invoke --env-vars` format, keyed by logical id: each function's template environment
        with local resources and endpoints (SAM's container reaches the host's ports on 127.0.0.1 only
        with `--docker-network host`)."""
        per_function = {}
        for definition in self.definitions:
            env = self.function_environment(definition.name)
            per_function[definition.logical_id] = {
                k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            }
        return per_function

    def _write_outputs(self) -> None:
        (self.state_dir / "outputs.json").write_text(json.dumps(self.outputs(), indent=2) + "\n")
        (self.state_dir / "sam-env.json").write_text(json.dumps(self.sam_environment(), indent=2) + "\n")

    def stop(self) -> None:
        for poller in self.stream_pollers:
            poller.stop()
        for server in [*self.function_urls.values(), self.api]:
            if server is not None:
                server.shutdown()
                server.server_close()
        if self.lambda_api is not None:
            self.lambda_api.stop()
        if self.bedrock is not None:
            self.bedrock.stop()
        if self.appconfig is not None:
            self.appconfig.stop()
        for function in self.functions.values():
            function.stop()
        if self.llama is not None:
            self.llama.stop()
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


def _model_credentials(model: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Real Bedrock: the developer's own credentials reach the functions (and every call then signs as
    the developer, not as the function)."""
    if model != "bedrock":
        return {}
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION")
    return {name: environ[name] for name in names if name in environ}


def _model_overrides(model: str, environ: Mapping[str, str]) -> dict[str, str]:
    """An OpenAI-compatible server answers instead of Bedrock: the adapter switch and its address."""
    if model != "openai":
        return {}
    names = ("OPENAI_BASE_URL", "OPENAI_API_KEY")
    return {"MODEL_PROVIDER": "openai", **{name: environ[name] for name in names if name in environ}}


def resource_variables(definitions: Sequence[FunctionDefinition]) -> tuple[str, ...]:
    """The variables that carry resource identifiers: the local stack resolves them, nobody overrides them."""
    urls = tuple(url_variable(d.url_output_key) for d in definitions if d.streaming and d.url_output_key)
    return (TABLE_NAME_ENV, "UPLOADS_BUCKET", "JWT_ISSUER", "JWT_AUDIENCE", "API_URL", *urls)


def function_name_variables(definitions: Sequence[FunctionDefinition]) -> set[str]:
    """Deployed names of async targets: the template's, never overridden (a wrong one loses the work)."""
    return {function_name_variable(target) for d in definitions for target in d.invokes}


def developer_overrides(
    definitions: Sequence[FunctionDefinition], environ: Mapping[str, str], path: Path | None
) -> dict[str, tuple[str, str]]:
    """Settings a developer changes for the local stack only: any variable a function's settings model
    reads, from `local.env` (KEY=VALUE lines) or, winning over it, from `make dev`'s own environment.
    Returns name -> (value, where it came from)."""
    readable = {name for d in definitions for name in d.settings.variables()}
    readable -= set(resource_variables(definitions)) | function_name_variables(definitions)
    found: dict[str, tuple[str, str]] = {}
    if path is not None and path.exists():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            name, sep, value = text.partition("=")
            if not sep or name.strip() not in readable:
                raise ValueError(
                    f"{path}:{number}: not KEY=VALUE with a setting some function reads (resource ids are "
                    f"the stack's own): {text!r}"
                )
            found[name.strip()] = (value.strip(), path.name)
    for name in sorted(readable & set(environ)):
        found[name] = (environ[name], "environment")
    return found


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
    concurrency = args.concurrency if args else 10
    model = getattr(args, "model", None)  # None: COACH_LOCAL_MODEL, else the double
    ports = StackPorts.ephemeral() if ephemeral else StackPorts()
    stack = LocalStack(ports, state_dir, concurrency=concurrency, model=model)
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
    if stack.appconfig is not None:
        flags = f"{stack.appconfig.flags.path} (python -m local flags --streaming on|off --percentage N)"
        print(f"  {'streaming flags (AppConfig)':28} {stack.appconfig.url}, from {flags}")
    print(f"  {'demo page':28} {outputs['apiUrl']}/demo/")
    print(f"  {'functions':28} as `cdk synth` defines them ({stack.synth_note})")
    print(f"  {'concurrency':28} up to {stack.concurrency} environments a function, then 429 (--concurrency)")
    for poller in stack.stream_pollers:
        mapping = poller.mapping
        queue = (mapping.on_failure_destination or "none").rsplit(":", 1)[-1]
        batches = f"batches of {mapping.batch_size}, dead letters: {queue}"
        print(f"  {'table stream ->':28} {mapping.function_name} ({batches})")
    for name, (value, source) in sorted(stack.overrides.items()):
        print(f"  {'override':28} {name}={value}  (from {source})")
    print(f"\nwrote {stack.state_dir / 'outputs.json'} and {stack.state_dir / 'sam-env.json'}")
    print(_try_it(outputs))
    print("Ctrl-C stops everything.\n", flush=True)
    stopped.wait()
    print("stopping...", flush=True)
    stack.stop()
    print("stopped.", flush=True)
