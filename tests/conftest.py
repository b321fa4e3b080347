"""The local stack the integration and browser tests share: real processes, real loopback HTTP, free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.catalog import FUNCTIONS, FunctionDefinition
from local.stack import LocalStack, StackPorts

TEST_FUNCTION = FunctionDefinition(
    name="t-stream", folder="", streaming=True, handler="tests.fixtures.stream_handlers.dispatch"
)
SHORT_TIMEOUT_FUNCTION = FunctionDefinition(
    name="t-short",
    folder="",
    streaming=True,
    handler="tests.fixtures.stream_handlers.dispatch",
    timeout_seconds=2,
)
BUFFERED_FUNCTION = FunctionDefinition(
    name="t-buffered",
    folder="",
    streaming=False,
    handler="tests.fixtures.stream_handlers.dispatch",
    public_routes=("POST /events",),
)
CONVERSATION_HANDLER = "functions.stream_coach_conversation.handler.handler"
SHORT_BUDGET_CONVERSATION = FunctionDefinition(
    name="t-conversation-short-budget",
    folder="",
    streaming=True,
    handler=CONVERSATION_HANDLER,
    extra_environment={"STREAM_TIME_BUDGET_SECONDS": "1.5"},
)
STREAMING_OFF_CONVERSATION = FunctionDefinition(
    name="t-conversation-streaming-off",
    folder="",
    streaming=True,
    handler=CONVERSATION_HANDLER,
    extra_environment={"STREAMING_ENABLED": "false"},
)
MISCONFIGURED_CONVERSATION = FunctionDefinition(
    name="t-conversation-misconfigured",
    folder="",
    streaming=True,
    handler=CONVERSATION_HANDLER,
    extra_environment={"JWT_AUDIENCE": ""},
)
TEST_FUNCTIONS = (
    TEST_FUNCTION,
    SHORT_TIMEOUT_FUNCTION,
    BUFFERED_FUNCTION,
    SHORT_BUDGET_CONVERSATION,
    STREAMING_OFF_CONVERSATION,
    MISCONFIGURED_CONVERSATION,
)


@pytest.fixture(scope="session")
def gate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gates")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, gate_dir: Path) -> Iterator[LocalStack]:
    definitions = (*FUNCTIONS, *TEST_FUNCTIONS)
    state = tmp_path_factory.mktemp("local-state")
    local = LocalStack(
        StackPorts.ephemeral(definitions),
        state,
        definitions,
        concurrency=3,
        extra_environment={"GATE_DIR": str(gate_dir), "RATE_LIMIT_PER_MINUTE": "30"},
        model="double",
    )
    local.start()
    yield local
    local.stop()


@pytest.fixture
def url(stack: LocalStack):
    def function_url(name: str) -> str:
        return stack.function_urls[name].url

    return function_url
