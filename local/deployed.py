"""The functions as `cdk synth` defines them: the local stack runs each one from its synthesized template.

Name, handler, runtime, timeout, memory, environment and role policy are read from the templates the CDK
app synthesizes (the very code `make synth` runs, asset bundling skipped), never rebuilt by the local
stack's own code: a setting, name or permission cannot differ between what deploys and what runs here.
Only resource identifiers (the table, the bucket, the issuer, the URLs) are resolved to local ones.

Synthesizing takes seconds, so the result is cached under the state folder, keyed by the definitions and
the deploy settings, and checked against the content of every project module the synth imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from functions.catalog import FunctionDefinition
from local.aws_calls import ACCOUNT_ID as LOCAL_ACCOUNT
from local.aws_calls import DEFAULT_REGION as LOCAL_REGION

REPO_ROOT = Path(__file__).resolve().parent.parent
TASK_ROOT = "/var/task"  # where Lambda unpacks the asset; the template's paths point into it
LOCAL_PARTITION = "aws"
CACHE_FORMAT = "2"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coach-stream" / "synth"
CACHE_ENTRIES = 8
_PROJECT_PACKAGES = ("infra", "functions", "shared")


class TemplateError(RuntimeError):
    """The templates hold something the local stack cannot run faithfully."""


@dataclass(frozen=True)
class DeployedFunction:
    catalog_name: str
    logical_id: str
    name: str  # FunctionName
    handler: str
    runtime: str  # e.g. python3.13
    architecture: str
    timeout_seconds: int
    memory_mb: int
    environment: dict[str, Any]  # as the template gives it: literals, or intrinsics for resource ids
    policy: list[dict[str, Any]]  # the role's statements, as the template gives them
    url_cors: dict[str, Any] | None  # the Function URL's CORS configuration, if it has a URL
    environment_concurrency: int = 1  # Managed Instances' PerExecutionEnvironmentMaxConcurrency; else 1
    log_format: str = "Text"  # LoggingConfig.LogFormat: Lambda tells the runtime in AWS_LAMBDA_LOG_FORMAT

    @property
    def streaming(self) -> bool:
        return "AWS_LAMBDA_EXEC_WRAPPER" in self.environment

    def placeholder_environment(self, placeholder: str = "resource-id") -> dict[str, str]:
        """The template's environment, each resource reference a placeholder: for runs that never reach
        a resource (timing an import or a cold start) but must pass the settings' validation."""
        return {name: value if isinstance(value, str) else placeholder for name, value in self.environment.items()}


@dataclass(frozen=True)
class StageThrottle:
    """An HTTP API stage's default route throttle: each route's token bucket holds `burst` requests and
    refills at `rate_per_second`."""

    rate_per_second: float
    burst: int


@dataclass(frozen=True)
class DeployedApp:
    functions: dict[str, DeployedFunction]  # by catalog name
    templates: dict[str, dict[str, Any]]  # by stack name

    def function(self, catalog_name: str) -> DeployedFunction:
        return self.functions[catalog_name]

    def http_api_throttle(self) -> StageThrottle | None:
        """The HTTP API stage's `DefaultRouteSettings` throttle (None without one). A route-level override would
        not be mirrored, so a stage that has one is refused rather than run with the wrong limits."""
        stages = [
            resource["Properties"]
            for template in self.templates.values()
            for resource in template.get("Resources", {}).values()
            if resource["Type"] == "AWS::ApiGatewayV2::Stage"
        ]
        if len(stages) > 1:
            raise TemplateError(f"{len(stages)} HTTP API stages; the local API Gateway serves one")
        if not stages:
            return None
        if any("Throttling" in key for route in stages[0].get("RouteSettings", {}).values() for key in route):
            raise TemplateError("route-level throttles are not mirrored by the local API Gateway")
        default = stages[0].get("DefaultRouteSettings", {})
        if "ThrottlingRateLimit" not in default or "ThrottlingBurstLimit" not in default:
            return None
        return StageThrottle(float(default["ThrottlingRateLimit"]), int(default["ThrottlingBurstLimit"]))

    def to_json(self) -> dict[str, Any]:
        return {"functions": {k: asdict(v) for k, v in self.functions.items()}, "templates": self.templates}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeployedApp:
        functions = {k: DeployedFunction(**v) for k, v in data["functions"].items()}
        return cls(functions=functions, templates=dict(data["templates"]))


# --- synthesizing, with a cache ----------------------------------------------------------------------


def synthesize(
    definitions: Sequence[FunctionDefinition],
    environ: Mapping[str, str] | None = None,
    cache_dir: Path = CACHE_DIR,
) -> DeployedApp:
    """The synthesized app for `definitions`, deploy settings read from `environ` as `cdk synth` reads
    them from the shell; from the cache when no input changed."""
    env = dict(os.environ if environ is None else environ)
    key = _cache_key(definitions, env)
    cache_file = cache_dir / f"synth-{key}.json"
    cached = _read_cache(cache_file)
    if cached is not None:
        return cached
    app, inputs = _synthesize_now(definitions, env)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps({"inputs": inputs, "app": app.to_json()}))
    entries = sorted(cache_dir.glob("synth-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[CACHE_ENTRIES:]:
        stale.unlink(missing_ok=True)
    return app


def _cache_key(definitions: Sequence[FunctionDefinition], env: Mapping[str, str]) -> str:
    from infra.config import SETTINGS  # plain data, no CDK

    settings = {s.env_var: env.get(s.env_var) for s in SETTINGS.values()}
    cdk_json = (REPO_ROOT / "cdk.json").read_text()
    text = json.dumps([CACHE_FORMAT, repr(tuple(definitions)), settings, cdk_json, sys.version_info[:2]])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cache(path: Path) -> DeployedApp | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if any(_file_digest(Path(name)) != digest for name, digest in data["inputs"].items()):
        return None
    return DeployedApp.from_json(data["app"])


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _project_modules() -> dict[str, str]:
    """Every project module loaded in this process, with its digest: the synth's real inputs."""
    found: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and name.split(".")[0] in _PROJECT_PACKAGES and Path(path).is_relative_to(REPO_ROOT):
            found[path] = _file_digest(Path(path))
    return found


def _synthesize_now(definitions: Sequence[FunctionDefinition], env: Mapping[str, str]) -> tuple[DeployedApp, Any]:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build, new_app  # lazily: the CDK and its node runtime only on a cache miss
    from infra.config import InfraConfig

    with tempfile.TemporaryDirectory(prefix="coach-synth-") as outdir:
        app = new_app({"aws:cdk:bundling-stacks": []}, outdir=outdir)
        built = build(app, InfraConfig.load(app.node.try_get_context, environ=env), definitions, nag=False)
        assembly = app.synth()
        templates = {stack.stack_name: assembly.get_stack_by_name(stack.stack_name).template for stack in built.stacks}
    inputs = _project_modules()
    inputs[str(REPO_ROOT / "cdk.json")] = _file_digest(REPO_ROOT / "cdk.json")
    return read_functions(templates, definitions), inputs


# --- reading the templates ---------------------------------------------------------------------------


def read_functions(templates: Mapping[str, dict[str, Any]], definitions: Sequence[FunctionDefinition]) -> DeployedApp:
    resources = {lid: r for t in templates.values() for lid, r in t.get("Resources", {}).items()}
    functions: dict[str, DeployedFunction] = {}
    for definition in definitions:
        resource = resources.get(definition.logical_id)
        if resource is None or resource["Type"] != "AWS::Lambda::Function":
            raise TemplateError(f"{definition.name}: no function {definition.logical_id} in the templates")
        props = resource["Properties"]
        role_id = props["Role"]["Fn::GetAtt"][0]
        url = next(
            (
                r["Properties"]
                for r in resources.values()
                if r["Type"] == "AWS::Lambda::Url"
                and r["Properties"].get("TargetFunctionArn", {}).get("Fn::GetAtt", [None])[0] == definition.logical_id
            ),
            None,
        )
        functions[definition.name] = DeployedFunction(
            catalog_name=definition.name,
            logical_id=definition.logical_id,
            name=_literal(props["FunctionName"], "FunctionName"),
            handler=props["Handler"],
            runtime=props["Runtime"],
            architecture=(props.get("Architectures") or ["x86_64"])[0],
            timeout_seconds=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            environment=dict(props.get("Environment", {}).get("Variables", {})),
            policy=_role_statements(resources, role_id),
            url_cors=(url or {}).get("Cors") if url is not None else None,
            environment_concurrency=_environment_concurrency(props),
            log_format=str(props.get("LoggingConfig", {}).get("LogFormat", "Text")),
        )
    return DeployedApp(functions=functions, templates=dict(templates))


def _environment_concurrency(props: Mapping[str, Any]) -> int:
    """How many invocations one environment serves: N on Managed Instances, one on classic Lambda."""
    config = props.get("CapacityProviderConfig", {}).get("LambdaManagedInstancesCapacityProviderConfig")
    return int(config.get("PerExecutionEnvironmentMaxConcurrency", 1)) if config else 1


def _literal(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{what} must be a literal in the template to run locally, not {value!r}")
    return value


def _role_statements(resources: Mapping[str, Any], role_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} in resource["Properties"].get("Roles", []):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    role = resources[role_id]["Properties"]
    for inline in role.get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    if role.get("ManagedPolicyArns"):
        raise TemplateError(f"{role_id}: managed policies cannot be evaluated locally")
    return statements


# --- resolving intrinsics to local values ------------------------------------------------------------


class LocalResolver:
    """Evaluates CloudFormation intrinsics against local resources.

    `attribute(resource_type, name, attribute)` gives a resource's local value (`attribute` is "Ref" for
    `Ref`); exports across stacks are followed to the stack that defines them. Anything else (a resource
    type or an intrinsic it does not know) raises, so a new kind of reference fails loudly.
    """

    PSEUDO = {
        "AWS::Partition": LOCAL_PARTITION,
        "AWS::Region": LOCAL_REGION,
        "AWS::AccountId": LOCAL_ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
    }

    def __init__(self, app: DeployedApp, attribute: Callable[[str, str, str], str]) -> None:
        self.attribute = attribute
        self.resources = {lid: r for t in app.templates.values() for lid, r in t.get("Resources", {}).items()}
        self.exports = {
            output["Export"]["Name"] if isinstance(output["Export"]["Name"], str) else None: output["Value"]
            for t in app.templates.values()
            for output in t.get("Outputs", {}).values()
            if "Export" in output
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        function = next(iter(value), "") if len(value) == 1 else ""
        if function != "Ref" and not function.startswith("Fn::"):
            return {k: self.resolve(v) for k, v in value.items()}  # a plain object, e.g. a policy statement
        argument = value[function]
        if function == "Ref":
            if argument in self.PSEUDO:
                return self.PSEUDO[argument]
            return self._attribute(argument, "Ref")
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._attribute(logical_id, attribute)
        if function == "Fn::ImportValue":
            name = self.resolve(argument)
            if name not in self.exports:
                raise TemplateError(f"no stack exports {name!r}")
            return self.resolve(self.exports[name])
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(self.resolve(item)) for item in items)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(index)]
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(text)).split(separator)
        raise TemplateError(f"{function} is not resolved locally")

    def _attribute(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"no resource {logical_id}")
        return self.attribute(resource["Type"], logical_id, attribute)
