"""web/coach-stream-client.js against the real local stack: Node streams a turn, Python checks it."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from local.bedrock_double import Script
from local.demo import DEMO_COACH, DEMO_COACH_ID
from local.stack import TABLE_NAME, LocalStack
from shared.store.dynamodb.coaches import DynamoCoachRepository
from shared.store.dynamodb.conversations import DynamoConversationRepository
from tests.integration.model_script import TurnScript

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "web" / "test" / "live-conversation.mjs"
MESSAGE = "I did 5x5 squats at 100kg today, what next?"
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
        MESSAGE,
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


# Twelve pieces 100 ms apart: the turn is still running on the server when the client's connection drops.
SLOW_REPLY = (
    "Solid ", "session. ", "Five ", "by ", "five ", "at ", "100 kg ", "is ", "a ", "good ", "base: ", "add 2.5 kg.",
)  # fmt: skip


@pytest.fixture
def slow_reply(stack: LocalStack) -> Iterator[None]:
    assert stack.bedrock is not None
    default = stack.bedrock.responder
    stack.bedrock.responder = TurnScript(reply=Script.reply(*SLOW_REPLY, delay=0.1))
    yield
    stack.bedrock.responder = default


def test_a_stream_dropped_after_its_first_chunk_ends_with_the_stored_reply_sent_once(node, stack, user, slow_reply):
    events, stderr = run_client(node, stack, user, "--drop-after-first-chunk")
    path = f"/users/{user['userId']}/coaches/{user['coachId']}/conversations/{user['conversationId']}"

    assert "recovering: STREAM_INTERRUPTED" in stderr, stderr
    requests = [line.removeprefix("request: ") for line in stderr.splitlines() if line.startswith("request: ")]
    posts = [request for request in requests if not request.startswith("GET ")]
    assert posts == [f"POST {path}/stream"], "the message is sent once, never again"
    assert f"GET {path}" in requests, "the reply was read back through the API"

    streamed = "".join(event["content"] for event in events if event["type"] == "chunk")
    last = events[-1]
    assert last["type"] == "complete" and last["recovered"] is True and last["replyStatus"] == "complete", last
    assert last["fullMessage"] == "".join(SLOW_REPLY)
    assert streamed and last["fullMessage"].startswith(streamed) and streamed != last["fullMessage"]

    stored = httpx.get(
        f"{stack.outputs()['apiUrl']}{path}", headers={"Authorization": f"Bearer {stack.issuer.mint(user['userId'])}"}
    ).json()["messages"]
    assert [(m["role"], m["content"]) for m in stored] == [("user", MESSAGE), ("assistant", "".join(SLOW_REPLY))]
    assert last["userMessage"]["id"] == stored[0]["id"] and last["messageId"] == stored[1]["id"]
