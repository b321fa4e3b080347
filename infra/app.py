"""Build the whole CDK app: used by `app.py` (cdk synth/deploy) and by tests/infra (same code and context)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from functions.catalog import FUNCTIONS, FunctionDefinition
from infra.api_stack import ApiStack
from infra.auth_stack import AuthStack
from infra.bundling import REPO_ROOT
from infra.catalog_rules import table_stream_view_type
from infra.config import InfraConfig
from infra.data_stack import DataStack
from infra.managed_instances import ManagedInstancesStack


@dataclass(frozen=True)
class CoachStreamApp:
    app: App
    config: InfraConfig
    data: DataStack
    auth: AuthStack
    api: ApiStack
    compute: ManagedInstancesStack | None = None  # only with managedInstances=true

    @property
    def stacks(self) -> tuple[Stack, ...]:
        return (self.data, self.auth, *([self.compute] if self.compute is not None else []), self.api)


def cdk_json_context(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The `context` block of cdk.json (feature flags): tests synthesize with what `cdk synth` uses."""
    return dict(json.loads((root / "cdk.json").read_text()).get("context", {}))


def build(
    app: App,
    config: InfraConfig | None = None,
    definitions: Iterable[FunctionDefinition] = FUNCTIONS,
    *,
    root: Path = REPO_ROOT,
    nag: bool | None = None,
) -> CoachStreamApp:
    config = config or InfraConfig.load(app.node.try_get_context)
    definitions = tuple(definitions)
    prefix = config.stack_prefix
    data = DataStack(
        app,
        f"{prefix}Data",
        config=config,
        stream_view_type=table_stream_view_type(definitions),  # the stream the catalog's stream sources read
        description="coach-stream: table and uploads bucket",
    )
    auth = AuthStack(app, f"{prefix}Auth", config=config, description="coach-stream: Cognito user pool")
    compute = (
        ManagedInstancesStack(
            app,
            f"{prefix}Compute",
            config=config,
            description="coach-stream: VPC and Lambda Managed Instances capacity provider for the streaming functions",
        )
        if config.managed_instances
        else None
    )
    api = ApiStack(
        app,
        f"{prefix}Api",
        config=config,
        definitions=definitions,
        data=data,
        auth=auth,
        root=root,
        compute=compute,
        description="coach-stream: functions, streaming Function URLs, HTTP API, REST streaming API",
    )
    Tags.of(app).add("project", "coach-stream")
    if config.nag if nag is None else nag:
        # cdk-nag 3.x is a policy-validation plugin: an unacknowledged finding fails the synth.
        Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return CoachStreamApp(app=app, config=config, data=data, auth=auth, api=api, compute=compute)


def new_app(context: Mapping[str, Any] | None = None, **kwargs: Any) -> App:
    return App(context={**cdk_json_context(), **(context or {})}, **kwargs)
