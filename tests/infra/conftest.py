"""Synthesize the CDK app once per session (bundling skipped), for the real catalog and a richer fake one.

The fake catalog exercises what the real one does not list yet (fallback routes, a public route, an
async target, a buffered function, a stream source of its own shape), so the generation rules are tested
before those functions land.
Its folders do not exist and nothing is created under functions/: bundling is skipped
(`aws:cdk:bundling-stacks` = []), and a missing folder is only a synth warning.
"""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest
from pydantic import Field

from functions.catalog import FUNCTIONS, FunctionDefinition, TableStreamSource
from shared.settings import (
    CoachApiSettings,
    ConversationTurnSettings,
    ModelWorkerSettings,
    UploadsSettings,
    function_name_variable,
)
from tests.fixtures.cdk_synth import Synthesized, synthesize


class FakeTurnSettings(ConversationTurnSettings):
    worker_function_name: str = Field(alias=function_name_variable("t-worker"))


class FakeFallbackSettings(FakeTurnSettings, CoachApiSettings):
    """A fallback that also serves `/config` (stream URLs, API URL)."""


class FakeWorkerSettings(ModelWorkerSettings, UploadsSettings):
    worker_mode: str = Field(alias="WORKER_MODE")


FAKE_FUNCTIONS: tuple[FunctionDefinition, ...] = (
    FunctionDefinition(
        name="t-stream",
        folder="t_stream_not_on_disk",
        streaming=True,
        timeout_seconds=120,
        memory_mb=512,
        invokes=("t-worker",),
        url_output_key="tStreamUrl",
        settings=FakeTurnSettings,
        table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),
        model_calls=(("reply", "stream"), ("side", "converse")),
    ),
    FunctionDefinition(
        name="t-fallback",
        folder="t_fallback_not_on_disk",
        streaming=False,
        invokes=("t-worker",),
        api_routes=(
            "POST /users/{userId}/coaches/{coachId}/conversations/{conversationId}/send-message",
            "GET /users/{userId}/coaches",
        ),
        public_routes=("GET /config",),
        settings=FakeFallbackSettings,
        table_actions=("GetItem", "Query", "PutItem", "UpdateItem"),
        model_calls=(("reply", "stream"), ("reply", "converse"), ("side", "converse")),
    ),
    FunctionDefinition(
        name="t-worker",
        folder="t_worker_not_on_disk",
        streaming=False,
        timeout_seconds=60,
        stream_source=TableStreamSource(
            item_type="t-job",
            batch_size=5,
            retry_attempts=1,
            max_record_age_seconds=3600,
            bisect_on_error=False,
            view_type="NEW_AND_OLD_IMAGES",
            starting_position="LATEST",
            dead_letter_retention_days=4,
        ),
        extra_environment={"WORKER_MODE": "async"},
        settings=FakeWorkerSettings,
        table_actions=("Query", "PutItem"),
        model_calls=(("side", "converse"),),
    ),
    FunctionDefinition(name="t-plain", folder="t_plain_not_on_disk", streaming=False),
)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app exactly as `make synth` builds it from functions/catalog.py (minus bundling)."""
    return synthesize(tmp_path_factory.mktemp("cdk-real"), FUNCTIONS)


@pytest.fixture(scope="session")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """A fuller catalog and non-default settings, given as context like `cdk synth -c key=value`."""
    return synthesize(
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
