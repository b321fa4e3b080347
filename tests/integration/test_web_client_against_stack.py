"""web/coach-stream-client.js against the real local stack: Node streams a turn, Python checks it."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from local.demo import DEMO_COACH, DEMO_COACH_ID
from local.stack import TABLE_NAME, LocalStack
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "web" / "test" / "live-conversation.mjs"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed: the web client needs Node 20+")
    return found


@pytest.fixture
def user(stack: LocalStack) -> dict[str, str]:
    """The demo coach for a user of its own: the demo user's per-minute rate limit stays untouched."""
    user_id = f"web-{uuid.uuid4().hex[:8]}"
    table = stack.dynamodb.resource().Table(TABLE_NAME)
    DynamoCoachRepository(table).create_coach(DEMO_COACH.model_copy(update={"user_id": user_id}))
    conversation = DynamoConversationRepository(table).create_conversation(user_id, DEMO_COACH_ID, "web client")
    return {"userId": user_id, "coachId": DEMO_COACH_ID, "conversationId": conversation.conversation_id}


def run_client(node: str, stack: LocalStack, ids: dict[str, str], *extra: str) -> tuple[list[dict], str]:
    outputs = stack.outputs()
    command = [
        node,
        str(SCRIPT),
        "--stream-url",
        outputs["coachConversationStreamUrl"],
        "--api-url",
        outputs["apiUrl"],
        "--token",
        stack.issuer.mint(ids["userId"]),
        "--user-id",
        ids["userId"],
        "--coach-id",
        ids["coachId"],
        "--conversation-id",
        ids["conversationId"],
        "--message",
        "I did 5x5 squats at 100kg today, what next?",
        *extra,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()], result.stderr


def assert_a_whole_turn(events: list[dict]) -> None:
    types = [event["type"] for event in events]
    assert types[0] == "start" and types[-1] == "complete", types
    chunks = "".join(event["content"] for event in events if event["type"] == "chunk")
    assert chunks, "the reply has text"
    assert events[-1]["fullMessage"] == chunks


def test_the_client_streams_a_turn_from_the_function_url(node, stack, user):
    events, stderr = run_client(node, stack, user)
    assert_a_whole_turn(events)
    assert "contextual" in [event["type"] for event in events]
    assert "transport: stream" in stderr


def test_without_streaming_the_client_reads_the_apis_buffered_events(node, stack, user):
    events, stderr = run_client(node, stack, user, "--no-streaming")
    assert_a_whole_turn(events)
    assert "transport: buffered" in stderr
