"""Synthesize the CDK app once per session (bundling skipped), for the real catalog and a richer fake one.

The fake catalog exercises what the real one does not list yet (fallback routes, a public route, an
async target, a buffered function), so the generation rules are tested before those functions land.
Its folders do not exist and nothing is created under functions/: bundling is skipped
(`aws:cdk:bundling-stacks` = []), and a missing folder is only a synth warning.
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from functions.catalog import FUNCTIONS, FunctionDefinition

SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}

FAKE_FUNCTIONS: tuple[FunctionDefinition, ...] = (
    FunctionDefinition(
        name="t-stream",
        folder="t_stream_not_on_disk",
        streaming=True,
        timeout_seconds=120,
        memory_mb=512,
        uses_models=True,
        invokes=("t-worker",),
        url_output_key="tStreamUrl",
    ),
    FunctionDefinition(
        name="t-fallback",
        folder="t_fallback_not_on_disk",
        streaming=False,
        uses_models=True,
        invokes=("t-worker",),
        api_routes=(
            "POST /users/{userId}/coaches/{coachId}/conversations/{conversationId}/send-message",
            "GET /users/{userId}/coaches",
        ),
        public_routes=("GET /config",),
    ),
    FunctionDefinition(
        name="t-worker",
        folder="t_worker_not_on_disk",
        streaming=False,
        timeout_seconds=60,
        uses_models=True,
        extra_environment={"WORKER_MODE": "async"},
    ),
    FunctionDefinition(name="t-plain", folder="t_plain_not_on_disk", streaming=False, uses_table=False),
)


@dataclass
class Synthesized:
    built: Any  # infra.app.CoachStreamApp
    assembly: Any  # aws_cdk.cx_api.CloudAssembly
    definitions: tuple[FunctionDefinition, ...]

    @property
    def config(self) -> Any:
        return self.built.config

    def template(self, which: str) -> Any:
        from aws_cdk.assertions import Template

        stack = {"data": self.built.data, "auth": self.built.auth, "api": self.built.api}[which]
        return Template.from_json(self.assembly.get_stack_by_name(stack.stack_name).template)

    def raw(self, which: str) -> dict[str, Any]:
        stack = {"data": self.built.data, "auth": self.built.auth, "api": self.built.api}[which]
        return self.assembly.get_stack_by_name(stack.stack_name).template

    def template_files(self) -> list[Path]:
        return sorted(Path(self.assembly.directory).glob("*.template.json"))


def _synth(tmp: Path, definitions: tuple[FunctionDefinition, ...], **context: Any) -> Synthesized:
    from infra.app import build, new_app
    from infra.config import InfraConfig

    app = new_app({**SKIP_BUNDLING, **context}, outdir=str(tmp))
    config = InfraConfig.load(app.node.try_get_context, environ={})  # the developer's shell must not leak in
    built = build(app, config, definitions, nag=False)
    return Synthesized(built=built, assembly=app.synth(), definitions=definitions)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app exactly as `make synth` builds it from functions/catalog.py (minus bundling)."""
    return _synth(tmp_path_factory.mktemp("cdk-real"), FUNCTIONS)


@pytest.fixture(scope="session")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """A fuller catalog and non-default settings, given as context like `cdk synth -c key=value`."""
    return _synth(
        tmp_path_factory.mktemp("cdk-fake"),
        FAKE_FUNCTIONS,
        stackPrefix="CoachTest",
        namePrefix="coach-test",
        architecture="x86_64",
        allowedOrigins="https://app.example.com,https://admin.example.com",
        streamingEnabled="false",
        streamingPercentage="25",
        rateLimitPerMinute="7",
        streamTimeBudgetSeconds="600",
        modelIdReply="anthropic.claude-3-haiku-20240307-v1:0",
        modelIdSide="global.anthropic.claude-haiku-4-5-20251001-v1:0",
        samLocal="true",
        restStreaming="false",  # the switch off; the real app has the REST streaming API (test_rest_streaming.py)
    )


@pytest.fixture(scope="session", params=["real", "fake"])
def synthesized(request: pytest.FixtureRequest) -> Synthesized:
    return request.getfixturevalue(request.param)
