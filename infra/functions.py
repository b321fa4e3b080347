"""Constructs for the catalog's Python functions: one for any function, one for a streaming function.

`PythonCatalogFunction`: the managed Python runtime, its own role (no AWS managed policies: it may
write only to its own log group until the stack grants more), a log group with retention, timeout and
memory from the catalog, and code bundled locally (no Docker) with its own asset hash.

`StreamingPythonFunction` adds what streaming needs: `AWS_LAMBDA_EXEC_WRAPPER` pointing at the
adapter's wrapper inside the asset, and a Function URL in `RESPONSE_STREAM` mode. The URL's auth type
is NONE because the code verifies Cognito JWTs itself (CONTRACT.md section 1); CORS is limited to the
configured origins, `POST`, and the two request headers the contract uses.

On Lambda Managed Instances (`ManagedInstancesPlacement`, infra/managed_instances.py) a function runs only
as a published version: an unqualified invoke reaches `$LATEST.PUBLISHED`, never `$LATEST`. So such a
function gets an alias, `live`, on the version CDK publishes for each change of code or configuration,
and everything that invokes it (its Function URL, API Gateway) targets the alias: `invoke_target`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.catalog import FunctionDefinition
from infra.bundling import EXEC_WRAPPER, BundleSpec, asset_hash, bundle

TASK_ROOT = "/var/task"
EXEC_WRAPPER_PATH = f"{TASK_ROOT}/{EXEC_WRAPPER}"
URL_ALLOWED_HEADERS = ("authorization", "content-type")
URL_EXPOSED_HEADERS = ("retry-after",)  # a 429 tells the browser when to come back
LIVE_ALIAS = "live"


@dataclass(frozen=True)
class ManagedInstancesPlacement:
    """Where and how a function runs on Lambda Managed Instances (`CapacityProviderConfig`).

    `max_concurrency` is PerExecutionEnvironmentMaxConcurrency (Lambda hands it to the function as
    `AWS_LAMBDA_MAX_CONCURRENCY`), `memory_gib_per_vcpu` is ExecutionEnvironmentMemoryGiBPerVCpu, and
    `memory_mb` the execution environment's MemorySize (at least 2048 on Managed Instances).
    """

    capacity_provider: lambda_.CapacityProvider
    max_concurrency: int
    memory_gib_per_vcpu: int
    memory_mb: int


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """CDK's hook for bundling without Docker: build the asset directory with `infra.bundling.bundle`."""

    def __init__(self, spec: BundleSpec) -> None:
        self.spec = spec

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        bundle(self.spec, Path(output_dir))
        return True


def function_code(spec: BundleSpec) -> lambda_.Code:
    """The function's code asset: bundled locally, hashed by `infra.bundling.asset_hash`.

    The asset's source path is the repository root only because CDK needs one that exists: it is
    neither fingerprinted (the hash is ours) nor copied (the bundler picks the files).
    """
    return lambda_.Code.from_asset(
        str(spec.root),
        asset_hash=asset_hash(spec),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            # Never run: the local bundler always answers (or raises). CDK requires an image anyway.
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-python{spec.python_version}"),
            command=["false"],
            local=LocalPythonBundler(spec),
        ),
    )


def python_runtime(version: str) -> lambda_.Runtime:
    name = f"PYTHON_{version.replace('.', '_')}"
    runtime = getattr(lambda_.Runtime, name, None)
    if runtime is None:
        raise ValueError(f"aws-cdk-lib has no Lambda runtime {name}")
    return cast(lambda_.Runtime, runtime)


def lambda_architecture(name: str) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if name == "arm64" else lambda_.Architecture.X86_64


class PythonCatalogFunction(Construct):
    """One catalog entry as a Lambda function on the managed Python runtime."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: FunctionDefinition,
        function_name: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        python_version: str = "3.13",
        architecture: str = "arm64",
        log_retention_days: int = 30,
        managed_instances: ManagedInstancesPlacement | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.definition = definition
        self.managed_instances = managed_instances
        self.function_name = function_name
        self.log_group = logs.LogGroup(self, "Logs")
        # The L2 only takes an enum; CloudWatch takes the number of days, which is what we are given.
        cast(logs.CfnLogGroup, self.log_group.node.default_child).retention_in_days = log_retention_days
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: its log group plus what its catalog entry declares",
        )
        self.log_group.grant_write(self.role)
        placed: dict[str, Any] = {}
        if managed_instances is not None:
            placed = {
                # Managed Instances write JSON logs only.
                "logging_format": lambda_.LoggingFormat.JSON,
                # A superseded version keeps its execution environments running until it is deleted.
                "current_version_options": lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
            }
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=f"coach-stream {definition.name} ({'streaming' if definition.streaming else 'buffered'})",
            runtime=python_runtime(python_version),
            architecture=lambda_architecture(architecture),
            handler=definition.handler,
            code=code,
            timeout=Duration.seconds(definition.timeout_seconds),
            memory_size=definition.memory_mb if managed_instances is None else managed_instances.memory_mb,
            tracing=lambda_.Tracing.ACTIVE,  # Lambda's own segment per invocation; the functions carry no tracing SDK
            environment=dict(environment),
            role=self.role,
            log_group=self.log_group,
            **placed,
        )
        self.alias: lambda_.Alias | None = None
        if managed_instances is not None:
            managed_instances.capacity_provider.add_function(
                self.function,
                per_execution_environment_max_concurrency=managed_instances.max_concurrency,
                execution_environment_memory_gib_per_v_cpu=managed_instances.memory_gib_per_vcpu,
                # Only the alias's numbered version is invoked; a $LATEST.PUBLISHED version as well would
                # hold execution environments of its own that nothing calls.
                publish_to_latest_published=False,
            )
            self.alias = lambda_.Alias(
                self,
                "LiveAlias",
                alias_name=LIVE_ALIAS,
                version=self.function.current_version,
                description=f"{function_name}: the published version its Function URL and API Gateway invoke",
            )

    @property
    def invoke_target(self) -> lambda_.Function | lambda_.Alias:
        """What callers invoke: the `live` alias on Managed Instances, the function itself otherwise."""
        return self.alias if self.alias is not None else self.function

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        self.role.add_to_principal_policy(statement)


class StreamingPythonFunction(PythonCatalogFunction):
    """A Python function that streams through the adapter's exec wrapper behind its own Function URL."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        allowed_origins: tuple[str, ...],
        environment: Mapping[str, str],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            environment={**environment, "AWS_LAMBDA_EXEC_WRAPPER": EXEC_WRAPPER_PATH},
            **kwargs,
        )
        self.url = self.invoke_target.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
            cors=lambda_.FunctionUrlCorsOptions(
                allowed_origins=list(allowed_origins),
                allowed_methods=[lambda_.HttpMethod.POST],
                allowed_headers=list(URL_ALLOWED_HEADERS),
                exposed_headers=list(URL_EXPOSED_HEADERS),
                max_age=Duration.hours(1),
            ),
        )
