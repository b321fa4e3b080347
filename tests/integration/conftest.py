"""The local stack the integration and browser tests share: real processes, real loopback HTTP, free ports.

Session-scoped and started only when a test below this folder asks for it, so a unit or infra run
never pays for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.catalog import FUNCTIONS, STREAM_COACH_CONVERSATION, FunctionDefinition
from local.iam_gate import AwsCall
from local.iam_report import iam_table, requests_per_invocation
from local.stack import LocalStack, StackPorts
from shared.settings import ConversationStreamSettings
from shared.store.dynamodb.keys import rate_limit_pk

SERVICE_CLIENTS = {"bedrock": "model"}  # signing name -> the client name of `sdk_calls`
RATE_LIMIT_ITEMS = rate_limit_pk("")  # the key prefix of the items only the rate limit's own client touches


def sdk_client(call: AwsCall) -> str:
    """The `sdk_calls` client a recorded request counts against: the rate limit's own DynamoDB client for its
    items (`shared.aws_clients.RATE_LIMIT`), else the client of its service."""
    if call.service == "dynamodb" and call.item_key.startswith(RATE_LIMIT_ITEMS):
        return "rate_limit"
    return SERVICE_CLIENTS.get(call.service, call.service)


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

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
CONVERSATION_LIKE = {
    "handler": CONVERSATION_HANDLER,
    "settings": ConversationStreamSettings,
    "table_actions": STREAM_COACH_CONVERSATION.table_actions,
    "model_calls": STREAM_COACH_CONVERSATION.model_calls,
    "sdk_calls": STREAM_COACH_CONVERSATION.sdk_calls,
    "sdk_calls_after_deadline": STREAM_COACH_CONVERSATION.sdk_calls_after_deadline,
    "timeout_seconds": 300,
}
SHORT_BUDGET_CONVERSATION = FunctionDefinition(
    name="t-conversation-short-budget",
    folder="",
    streaming=True,
    **CONVERSATION_LIKE,
    # A 1 s margin: a claim on a clientMessageId lapses seconds after the deadline (tests/integration/test_faults.py).
    extra_environment={"STREAM_TIME_BUDGET_SECONDS": "1.5", "STREAM_DEADLINE_MARGIN_SECONDS": "1"},
)
STREAMING_OFF_CONVERSATION = FunctionDefinition(
    name="t-conversation-streaming-off",
    folder="",
    streaming=True,
    **CONVERSATION_LIKE,
    # Without AppConfig's names the environment alone decides (empty counts as unset), as under `sam local invoke`.
    extra_environment={
        "STREAMING_ENABLED": "false",
        "APPCONFIG_APPLICATION": "",
        "APPCONFIG_ENVIRONMENT": "",
        "APPCONFIG_FLAGS_PROFILE": "",
    },
)
MISCONFIGURED_CONVERSATION = FunctionDefinition(
    name="t-conversation-misconfigured",
    folder="",
    streaming=True,
    **CONVERSATION_LIKE,
    extra_environment={"JWT_AUDIENCE": ""},
)
# Per user and minute: high enough that the demo user's turns across a whole run never meet it.
RATE_LIMIT_PER_MINUTE = 60

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
        concurrency=16,
        prewarmed=3,
        extra_environment={"GATE_DIR": str(gate_dir), "RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE)},
        model="double",
        deploy_environ={},  # the developer's shell must not reach the templates under test
        overrides_file=None,
    )
    local.start()
    yield local
    calls = local.recorded_calls()
    denied = [call for call in calls if call.verdict == "denied" and not call.hid_a_missing_key]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "iam-table.md").write_text(iam_table(calls, local.role_policies(), local.definitions) + "\n")
    observed = requests_per_invocation(calls, sdk_client)
    (ARTIFACTS / "requests-per-invocation.json").write_text(json.dumps(observed, indent=1, sort_keys=True) + "\n")
    local.stop()
    assert denied == [], "calls the functions' synthesized roles would deny in AWS"
    # The time budgets count each function's requests per invocation: none may send more than it declares.
    for definition in local.definitions:
        declared = dict(definition.sdk_calls)
        seen = observed.get(local.functions[definition.name].spec.name, {})
        over = {client: n for client, n in seen.items() if n > declared.get(client, 0)}
        assert not over, f"{definition.name} sent more requests in one invocation than its sdk_calls: {over}"


@pytest.fixture
def url(stack: LocalStack):
    def function_url(name: str) -> str:
        return stack.function_urls[name].url

    return function_url
